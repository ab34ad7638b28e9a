/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The definition and ACL parser (supervisor/config.c): the fuzzer's bytes are a VM
 * definition file and a host ACL file. A definition that loads is turned into QEMU's
 * argv, which must never hand anyone a second monitor or a debugger: the supervisor's
 * own -mon is the only one. */

#include <stdlib.h>

#include "config.h"
#include "fuzz.h"

/* Options that would give someone QEMU's monitor, a debugger or QEMU's process. */
static bool option_is_forbidden(const char *s) {
        static const char * const options[] = {
                "qmp", "qmp-pretty", "monitor", "mon", "daemonize", "gdb", "s", "incoming",
                "readconfig", "runas", "chroot", "qtest", NULL,
        };

        if (s[0] != '-')
                return false;
        s += 1 + (s[1] == '-');
        for (size_t i = 0; options[i]; i++)
                if (strcmp(s, options[i]) == 0)
                        return true;
        return false;
}

static void check_argv(const VmConfig *c) {
        const QemuFds fds = { .qmp_fd = 3, .qga_listen_fd = 4 };
        char **argv = NULL;
        size_t n_mon = 0, i;

        FUZZ_ASSERT(vm_config_build_argv(c, "/usr/bin/qemu-system-x86_64", &fds, &argv) == 0);
        FUZZ_ASSERT(argv && argv[0]);
        for (i = 1; argv[i]; i++) {
                if (option_is_forbidden(argv[i])) {
                        /* Only the supervisor's: "-mon chardev=vmsup-qmp,mode=control". */
                        FUZZ_ASSERT(strcmp(argv[i], "-mon") == 0 && argv[i + 1] &&
                                    strcmp(argv[i + 1], "chardev=vmsup-qmp,mode=control") == 0);
                        n_mon++;
                }
                /* An argument that is a multiplexed monitor would reach the monitor too. */
                FUZZ_ASSERT(strncmp(argv[i], "mon:", 4) != 0 || strcmp(argv[i - 1], "-serial") != 0);
        }
        FUZZ_ASSERT(n_mon == 1);
        for (i = 0; argv[i]; i++)
                free(argv[i]);
        free(argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VmConfig *c = NULL;
        AclEntry *acl = NULL;
        size_t n_acl = 0;
        char *error = NULL;
        int r;

        r = vm_config_parse("/etc/vmsup/vms/fuzz.json", "fuzz", (const char *) data, size, &c, &error);
        if (r < 0) {
                FUZZ_ASSERT(!c);
                FUZZ_ASSERT(error || r == -ENOMEM);
                free(error);
        } else {
                FUZZ_ASSERT(c && c->name && c->binary && c->machine);
                for (size_t i = 0; i < c->n_acl; i++)
                        FUZZ_ASSERT((c->acl[i].privileges & ~PRIV_ALL) == 0);
                (void) vm_config_has_agent_device(c);
                check_argv(c);
                vm_config_free(c);
        }

        error = NULL;
        r = acl_file_parse("/etc/vmsup/acl.json", (const char *) data, size, &acl, &n_acl, &error);
        if (r < 0) {
                FUZZ_ASSERT(error || r == -ENOMEM);
                free(error);
        } else {
                for (size_t i = 0; i < n_acl; i++)
                        FUZZ_ASSERT((acl[i].privileges & ~PRIV_ALL) == 0 && acl[i].id != UINT32_MAX);
                free(acl);
        }
        return 0;
}
