/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reload without a restart: see reload.h for what applies when. */

#include <nss.h>

#include "launch.h"
#include "log.h"
#include "reload.h"
#include "sandbox.h"
#include "vm-dbus.h"

void vm_reload_setup(Vm *vm, const char *acl_path) {
        free(vm->acl_path);
        vm->acl_path = acl_path ? strdup(acl_path) : NULL;
}

void vm_reload_confined(void) {
        /* Other sources (systemd's userdb, LDAP, …) are modules glibc would load now, with
         * system calls the filter refuses: the supervisor would die of its own reload. The
         * built-in files source reads /etc/passwd and /etc/group with open and read. */
        (void) __nss_configure_lookup("passwd", "files");
        (void) __nss_configure_lookup("group", "files");
}

_printf_(2, 3) static int refuse(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EINVAL;
}

/* What this supervisor set up once and a reload cannot change. */
static int check_fixed(const VmConfig *cur, const VmConfig *n, char **ret_error) {
        const char *why = "takes a new supervisor (systemctl restart, or SIGUSR2 to hand the VM over)";

        if (vm_config_has_agent_device(cur) != vm_config_has_agent_device(n))
                return refuse(ret_error, "%s: $.agent: whether QEMU has an agent channel %s", n->path, why);
        if (streq(cur->machine, "none") != streq(n->machine, "none"))
                return refuse(ret_error, "%s: $.qemu.machine: whether QEMU has a serial console %s", n->path, why);
        if (cur->console_log_kib != n->console_log_kib)
                return refuse(ret_error, "%s: $.console_log_kib: the console log's size %s", n->path, why);
        if ((sandbox_supervisor_caps(n) & ~sandbox_supervisor_caps(cur)) != 0)
                return refuse(ret_error, "%s: $.run_as: QEMU's identity can change from root to another user only "
                              "when the supervisor starts", n->path);
        return 0;
}

static bool strv_equal(char * const *a, char * const *b) {
        size_t i;

        for (i = 0; a && b && a[i] && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

static void set_pending(Vm *vm, VmConfig *pending, char **keys) {
        bool changed = !strv_equal(vm->pending_keys, keys);

        vm_config_free(vm->pending);
        strv_free(vm->pending_keys);
        vm->pending = pending;
        vm->pending_keys = keys;
        if (changed)
                vm_emit_properties_changed(vm, "PendingChanges");
}

int vm_reload(Vm *vm, char **ret_error) {
        _cleanup_(vm_config_freep) VmConfig *n = NULL;
        _cleanup_free_ AclEntry *host_acl = NULL;
        _cleanup_strv_free_ char **keys = NULL;
        _cleanup_free_ char *error = NULL, *dir = NULL;
        size_t n_host_acl = 0;
        const char *slash;
        int r;

        *ret_error = NULL;
        slash = strrchr(vm->config->path, '/');
        dir = slash ? strndup(vm->config->path, (size_t) (slash - vm->config->path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        r = vm_config_load(dir, vm->config->name, &n, &error);
        if (r >= 0 && vm->acl_path)
                r = acl_file_load(vm->acl_path, &host_acl, &n_host_acl, &error);
        if (r >= 0)
                r = check_fixed(vm->config, n, &error);
        if (r >= 0 && vm_is_active(vm))
                r = vm_config_changed_keys(vm->config, n, &keys);
        if (r >= 0) {
                /* Last: once the launcher took the definition, nothing here fails. */
                r = launch_reload(n->text, n->text_len, &error);
                if (r == -EBUSY && !error)
                        error = strdup("QEMU is being started: reload again once it runs");
                if (r == -EOPNOTSUPP && !error)
                        error = strdup("the QEMU launcher predates reloading (its QEMU was started by an older "
                                       "vmsupd): restart the unit once QEMU has stopped");
        }
        if (r < 0) {
                if (!error && r != -ENOMEM)
                        if (asprintf(&error, "%s: %s", vm->config->path, strerror(-r)) < 0)
                                error = NULL;
                log_warning("VM %s: reload refused, the configuration in force stays: %s", vm->config->name,
                            error ?: strerror(-r));
                *ret_error = TAKE_PTR(error);
                return r;
        }

        vm_config_swap_at_once(vm->config, n);
        free(vm->host_acl);
        vm->host_acl = TAKE_PTR(host_acl);
        vm->n_host_acl = n_host_acl;
        if (!vm_is_active(vm)) {
                vm_config_swap_qemu(vm->config, n);
                set_pending(vm, NULL, NULL);
        } else if (strv_length(keys) == 0) {
                set_pending(vm, NULL, NULL);
        } else {
                set_pending(vm, TAKE_PTR(n), TAKE_PTR(keys));
        }
        if (vm->pending_keys) {
                _cleanup_free_ char *joined = NULL;
                size_t len = 0;
                for (size_t i = 0; vm->pending_keys[i]; i++)
                        len += strlen(vm->pending_keys[i]) + 2;
                joined = calloc(1, len + 1);
                for (size_t i = 0; joined && vm->pending_keys[i]; i++) {
                        if (i > 0)
                                strcat(joined, ", ");
                        strcat(joined, vm->pending_keys[i]);
                }
                log_info("VM %s: reloaded %s and %s; the running QEMU keeps its settings of %s until it starts anew",
                         vm->config->name, vm->config->path, vm->acl_path ?: "no host ACL", joined ?: "some keys");
        } else
                log_info("VM %s: reloaded %s and %s", vm->config->name, vm->config->path,
                         vm->acl_path ?: "no host ACL");
        return 0;
}

void vm_reload_apply_pending(Vm *vm) {
        if (!vm->pending)
                return;
        vm_config_swap_qemu(vm->config, vm->pending);
        set_pending(vm, NULL, NULL);
}
