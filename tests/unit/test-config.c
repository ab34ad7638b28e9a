/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Definition and ACL parsing: a table of malformed inputs, each with the JSON path
 * and reason the message must name; defaults; the QEMU command line. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "config.h"

typedef struct BadCase {
        const char *json;
        const char *expect; /* substring of the message */
} BadCase;

static const BadCase bad_cases[] = {
        { "", "invalid JSON" },
        { "[]", "$: must be a JSON object" },
        { "{}", "$: missing key \"qemu\"" },
        { "{\"qemu\":{}, \"qemu\":{}}", "invalid JSON" }, /* duplicate key */
        { "{\"qemu\":{},\"extra\":1}", "$: unknown key \"extra\"" },
        { "{\"qemu\":[]}", "$.qemu: must be an object" },
        { "{\"qemu\":{\"bogus\":1}}", "$.qemu: unknown key \"bogus\"" },
        { "{\"qemu\":{\"binary\":5}}", "$.qemu.binary: must be a string" },
        { "{\"qemu\":{\"binary\":\"\"}}", "$.qemu.binary: must not be empty" },
        { "{\"qemu\":{\"binary\":\"bin/qemu\"}}", "$.qemu.binary: must be an absolute path or a bare name" },
        { "{\"qemu\":{\"binary\":\"/usr/bin/qemu\\n\"}}", "$.qemu.binary: must not contain control characters" },
        { "{\"qemu\":{\"binary\":\"/usr/bin/q\\u0000x\"}}", "invalid JSON: \\u0000 is not allowed" },
        { "{\"qemu\":{\"machine\":\"q35,accel=kvm\"}}", "$.qemu.machine: must be a machine type name" },
        { "{\"qemu\":{\"machine\":\"--s\"}}", "$.qemu.machine: must be a machine type name" },
        { "{\"qemu\":{\"machine\":\"-mon\"}}", "$.qemu.machine: must be a machine type name" },
        { "{\"qemu\":{\"machine\":\".q35\"}}", "$.qemu.machine: must be a machine type name" },
        { "{\"qemu\":{\"machine\":true}}", "$.qemu.machine: must be a string" },
        { "{\"qemu\":{\"accel\":\"kvm:hax\"}}", "$.qemu.accel: unknown accelerator \"hax\"" },
        { "{\"qemu\":{\"accel\":\":\"}}", "$.qemu.accel: must name at least one accelerator" },
        { "{\"qemu\":{\"cpus\":0}}", "$.qemu.cpus: must be an integer from 1 to 255" },
        { "{\"qemu\":{\"cpus\":256}}", "$.qemu.cpus: must be an integer from 1 to 255" },
        { "{\"qemu\":{\"cpus\":\"2\"}}", "$.qemu.cpus: must be an integer" },
        { "{\"qemu\":{\"cpus\":1.5}}", "$.qemu.cpus: must be an integer" },
        { "{\"qemu\":{\"memory_mib\":-1}}", "$.qemu.memory_mib: must be an integer from 16" },
        { "{\"qemu\":{\"memory_mib\":15}}", "$.qemu.memory_mib: must be an integer from 16" },
        { "{\"qemu\":{\"memory_mib\":99999999999}}", "$.qemu.memory_mib: must be an integer from 16" },
        { "{\"qemu\":{\"kernel\":\"vmlinuz\"}}", "$.qemu.kernel: must be an absolute path" },
        { "{\"qemu\":{\"initrd\":\"/boot/initrd\"}}", "$.qemu: \"initrd\" and \"append\" need \"kernel\"" },
        { "{\"qemu\":{\"append\":1}}", "$.qemu.append: must be a string" },
        { "{\"qemu\":{\"drives\":{}}}", "$.qemu.drives: must be an array" },
        { "{\"qemu\":{\"drives\":[1]}}", "$.qemu.drives[0]: must be an object" },
        { "{\"qemu\":{\"drives\":[{}]}}", "$.qemu.drives[0]: missing key \"file\"" },
        { "{\"qemu\":{\"drives\":[{\"file\":\"/a\",\"format\":\"qcow3\"}]}}", "$.qemu.drives[0]: unknown format" },
        { "{\"qemu\":{\"drives\":[{\"file\":\"/a\"},{\"file\":\"/b\",\"interface\":\"usb\"}]}}",
          "$.qemu.drives[1]: unknown interface \"usb\"" },
        { "{\"qemu\":{\"drives\":[{\"file\":\"/a\",\"cache\":\"none\"}]}}", "$.qemu.drives[0]: unknown key \"cache\"" },
        { "{\"qemu\":{\"drives\":[{\"file\":\"/a\",\"readonly\":\"yes\"}]}}",
          "$.qemu.drives[0].readonly: must be true or false" },
        { "{\"qemu\":{\"extra_args\":\"-S\"}}", "$.qemu.extra_args: must be an array of strings" },
        { "{\"qemu\":{\"extra_args\":[1]}}", "$.qemu.extra_args[0]: must be a string" },
        { "{\"qemu\":{\"extra_args\":[\"-qmp\",\"stdio\"]}}", "$.qemu.extra_args[0]: option \"-qmp\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"--monitor\",\"stdio\"]}}", "$.qemu.extra_args[0]: option \"-monitor\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-m\",\"1G\",\"-mon\",\"x\"]}}", "$.qemu.extra_args[2]: option \"-mon\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-daemonize\"]}}", "option \"-daemonize\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-pidfile\",\"/x\"]}}", "option \"-pidfile\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-runas\",\"x\"]}}", "option \"-runas\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-sandbox\",\"off\"]}}", "option \"-sandbox\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-qmp-pretty\",\"x\"]}}", "option \"-qmp-pretty\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-readconfig\",\"/x\"]}}", "option \"-readconfig\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-no-shutdown\"]}}", "option \"-no-shutdown\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-no-reboot\"]}}", "option \"-no-reboot\" is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-action\",\"panic=none\"]}}", "option \"-action\" is reserved" },
        { "{\"qemu\":{\"pvpanic\":1}}", "$.qemu.pvpanic: must be true or false" },
        { "{\"qemu\":{\"pvpanic\":\"isa\"}}", "$.qemu.pvpanic: must be true or false" },
        { "{\"qemu\":{\"machine\":\"none\",\"pvpanic\":true}}",
          "$.qemu.pvpanic: needs a machine with an ISA bus (q35, pc), not \"none\"" },
        { "{\"qemu\":{}, \"on_crash\":\"reboot\"}", "$.on_crash: must be one of \"destroy\" \"restart\" \"preserve\"" },
        { "{\"qemu\":{}, \"on_crash\":true}", "$.on_crash: must be one of" },
        { "{\"qemu\":{}, \"on_reboot\":\"preserve\"}", "$.on_reboot: must be one of \"destroy\" \"restart\"" },
        { "{\"qemu\":{}, \"on_poweroff\":\"preserve\"}", "$.on_poweroff: must be one of \"destroy\" \"restart\"" },
        { "{\"qemu\":{}, \"on_poweroff\":\"\"}", "$.on_poweroff: must be one of" },
        { "{\"qemu\":{\"extra_args\":[\"-chardev\",\"socket,id=vmsup-qmp,path=/x\"]}}",
          "$.qemu.extra_args[1]: ids starting with \"vmsup-\" are reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-device\",\"virtserialport,chardev=vmsup-qga\"]}}",
          "$.qemu.extra_args[1]: ids starting with \"vmsup-\" are reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-global\",\"isa-serial.chardev=vmsup-qmp\"]}}",
          "$.qemu.extra_args[1]: ids starting with \"vmsup-\" are reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-serial\",\"chardev:vmsup-qga\"]}}", "ids starting with \"vmsup-\" are reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-device\",\"virtio-serial-pci,bus=vmsup-vserial.0\"]}}", "ids starting with" },
        { "{\"qemu\":{\"extra_args\":[\"-drive\",\"file=/a,,id=x,id=vmsup-d\"]}}", "ids starting with" },
        { "{\"qemu\":{\"extra_args\":[\"-serial\",\"mon:stdio\"]}}", "a multiplexed monitor is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-chardev\",\"stdio,id=c,mux=on\"]}}", "a multiplexed monitor is reserved" },
        { "{\"qemu\":{\"extra_args\":[\"-set\",\"chardev.vmsup-qmp.path=/x\"]}}", "option \"-set\" is reserved" },
        { "{\"qemu\":{}, \"agent\":\"yes\"}", "$.agent: must be true or false" },
        { "{\"qemu\":{}, \"sandbox\":0}", "$.sandbox: must be true or false" },
        { "{\"qemu\":{}, \"autostart\":null}", "$.autostart: must be true or false" },
        { "{\"qemu\":{}, \"shutdown_timeout_sec\":0}", "$.shutdown_timeout_sec: must be an integer from 1 to 3600" },
        { "{\"qemu\":{}, \"shutdown_timeout_sec\":3601}", "$.shutdown_timeout_sec: must be an integer from 1 to 3600" },
        { "{\"qemu\":{}, \"console_log_kib\":1048577}", "$.console_log_kib: must be an integer from 0 to 1048576" },
        { "{\"qemu\":{}, \"console_log_kib\":-1}", "$.console_log_kib: must be an integer from 0 to 1048576" },
        { "{\"qemu\":{}, \"console_log_kib\":\"1M\"}", "$.console_log_kib: must be an integer from 0 to 1048576" },
        { "{\"qemu\":{}, \"run_as\":\"nobody\"}", "$.run_as: must be an object" },
        { "{\"qemu\":{}, \"run_as\":{}}", "$.run_as: missing key \"user\"" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"no-such-user-vmsup\"}}",
          "$.run_as.user: user \"no-such-user-vmsup\" does not exist" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"4000000000\"}}", "$.run_as.user: user 4000000000 does not exist" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"root\",\"group\":\"nogroup\"}}",
          "$.run_as: with user root QEMU keeps the supervisor's identity: no group or groups" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"0\",\"groups\":[]}}",
          "$.run_as: with user root QEMU keeps the supervisor's identity: no group or groups" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"nobody\",\"group\":\"no-such-group-vmsup\"}}",
          "$.run_as.group: group \"no-such-group-vmsup\" does not exist" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"nobody\",\"group\":\"root\"}}", "$.run_as.group: must not be the root group" },
        { "{\"qemu\":{}, \"run_as\":{\"user\":\"nobody\",\"shell\":\"x\"}}", "$.run_as: unknown key \"shell\"" },
        { "{\"qemu\":{}, \"acl\":{}}", "$.acl: must be an array" },
        { "{\"qemu\":{}, \"acl\":[1]}", "$.acl[0]: must be an object" },
        { "{\"qemu\":{}, \"acl\":[{\"privileges\":[]}]}", "$.acl[0]: must have exactly one of \"user\" and \"group\"" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\",\"group\":\"root\",\"privileges\":[]}]}",
          "$.acl[0]: must have exactly one of" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\"}]}", "$.acl[0]: missing key \"privileges\"" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"no-such-user-vmsup\",\"privileges\":[]}]}",
          "$.acl[0].user: user \"no-such-user-vmsup\" does not exist" },
        { "{\"qemu\":{}, \"acl\":[{\"group\":\"no-such-group-vmsup\",\"privileges\":[]}]}",
          "$.acl[0].group: group \"no-such-group-vmsup\" does not exist" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\",\"privileges\":[\"VM.Audit\",\"VM.Everything\"]}]}",
          "$.acl[0].privileges[1]: unknown privilege \"VM.Everything\"" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\",\"privileges\":\"VM.Audit\"}]}",
          "$.acl[0].privileges: must be an array of privilege names" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\",\"privileges\":[\"vm.audit\"]}]}", "unknown privilege \"vm.audit\"" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"root\",\"privileges\":[1]}]}", "$.acl[0].privileges[0]: must be a string" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"\",\"privileges\":[]}]}", "$.acl[0].user: must be a non-empty string" },
        { "{\"qemu\":{}, \"acl\":[{\"user\":\"99999999999\",\"privileges\":[]}]}", "$.acl[0].user: id 99999999999 is out of range" },
        { "{\"qemu\":{}, \"agent_file_paths\":\"/data\"}", "$.agent_file_paths: must be an array of guest paths" },
        { "{\"qemu\":{}, \"agent_file_paths\":[1]}", "$.agent_file_paths[0]: must be a string" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"/data\\u0000/x\"]}", "invalid JSON: \\u0000 is not allowed" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"data\"]}", "$.agent_file_paths[0]: must be an absolute, normalised" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"/ok\",\"/data/\"]}", "$.agent_file_paths[1]: must be an absolute" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"/data/../etc\"]}", "$.agent_file_paths[0]: must be an absolute" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"//data\"]}", "$.agent_file_paths[0]: must be an absolute" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"\"]}", "$.agent_file_paths[0]: must be an absolute" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"C:\\\\data\"]}", "$.agent_file_paths[0]: must be an absolute" },
        { "{\"qemu\":{}, \"agent_file_paths\":[\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\",\"/a\"]}",
          "$.agent_file_paths: has more than 64 paths" },
};

static void test_bad_definitions(void **state) {
        for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
                VmConfig *c = NULL;
                char *error = NULL;
                int r;

                r = vm_config_parse("/etc/vmsup/vms/t.json", "t", bad_cases[i].json, strlen(bad_cases[i].json), &c,
                                    &error);
                if (r >= 0 || !error || !strstr(error, bad_cases[i].expect) ||
                    !startswith(error, "/etc/vmsup/vms/t.json: ") || strchr(error, '\n'))
                        fail_msg("case %zu %s: r=%d message \"%s\", expected \"%s\"", i, bad_cases[i].json, r,
                                 error ?: "(none)", bad_cases[i].expect);
                assert_null(c);
                free(error);
        }
}

static void test_defaults(void **state) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL;
        char *error = NULL;

        assert_int_equal(vm_config_parse("x.json", "vm1", "{\"qemu\":{}}", 11, &c, &error), 0);
        assert_null(error);
        assert_string_equal(c->name, "vm1");
        assert_string_equal(c->binary, "qemu-system-x86_64");
        assert_string_equal(c->machine, "q35");
        assert_int_equal(strv_length(c->accel), 2);
        assert_string_equal(c->accel[0], "kvm");
        assert_string_equal(c->accel[1], "tcg");
        assert_int_equal(c->cpus, 1);
        assert_int_equal(c->memory_mib, 512);
        assert_true(c->agent);
        assert_true(c->sandbox);
        assert_true(c->autostart);
        assert_int_equal(c->shutdown_timeout_sec, 60);
        assert_int_equal(c->on_poweroff, VM_ACTION_DESTROY);
        assert_int_equal(c->on_reboot, VM_ACTION_RESTART);
        assert_int_equal(c->on_crash, VM_ACTION_DESTROY);
        assert_int_equal(c->console_log_kib, 1024);
        assert_false(c->has_run_as); /* until vm_config_load() applies the default user */
        assert_false(c->run_as_root);
        assert_int_equal(c->n_acl, 0);
        assert_int_equal(c->n_drives, 0);
        assert_null(c->agent_file_paths); /* absent: no confinement */
}

/* Without run_as QEMU runs as a system user of its own; root is a choice the definition makes. */
static void test_default_user_and_root(void **state) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL, *root = NULL, *given = NULL;
        char *error = NULL;

        assert_int_equal(vm_config_parse("x.json", "vm1", "{\"qemu\":{}}", 11, &c, &error), 0);
        assert_int_equal(vm_config_apply_default_user(c, "nobody", &error), 0);
        assert_null(error);
        assert_true(c->has_run_as);
        assert_int_equal(c->run_as_uid, 65534);
        assert_int_not_equal(c->run_as_gid, 0);
        assert_int_equal(c->n_run_as_groups, 0);

        c = vm_config_free(c);
        assert_int_equal(vm_config_parse("x.json", "vm1", "{\"qemu\":{}}", 11, &c, &error), 0);
        assert_int_not_equal(vm_config_apply_default_user(c, "no-such-user-vmsup", &error), 0);
        assert_non_null(error);
        assert_non_null(strstr(error, "x.json: $.run_as: absent, so QEMU runs as the system user \"no-such-user-vmsup\", "
                                      "which does not exist"));
        assert_false(c->has_run_as);
        error = mfree(error);
        assert_int_not_equal(vm_config_apply_default_user(c, "root", &error), 0);
        assert_non_null(strstr(error, "is root"));
        error = mfree(error);

        static const char root_def[] = "{\"qemu\":{}, \"run_as\":{\"user\":\"root\"}}";
        assert_int_equal(vm_config_parse("x.json", "vm1", root_def, strlen(root_def), &root, &error), 0);
        assert_true(root->run_as_root);
        assert_false(root->has_run_as);
        assert_int_equal(vm_config_apply_default_user(root, "nobody", &error), 0);
        assert_false(root->has_run_as); /* root stays root */

        static const char given_def[] = "{\"qemu\":{}, \"run_as\":{\"user\":\"nobody\",\"group\":\"nogroup\"}}";
        assert_int_equal(vm_config_parse("x.json", "vm1", given_def, strlen(given_def), &given, &error), 0);
        gid_t gid = given->run_as_gid;
        assert_int_equal(vm_config_apply_default_user(given, "root", &error), 0);
        assert_int_equal(given->run_as_uid, 65534);
        assert_int_equal(given->run_as_gid, gid);
}

static const char full_def[] =
        "{\"qemu\":{\"binary\":\"/usr/bin/qemu-system-x86_64\",\"machine\":\"q35\",\"accel\":\"tcg\",\"cpus\":2,"
        "\"memory_mib\":768,\"kernel\":\"/k\",\"initrd\":\"/i\",\"append\":\"console=ttyS0 quiet\","
        "\"drives\":[{\"file\":\"/var/lib/a,b.img\",\"format\":\"qcow2\",\"interface\":\"virtio\",\"readonly\":true}],"
        "\"extra_args\":[\"-device\",\"virtio-rng-pci\"],\"pvpanic\":true},"
        "\"run_as\":{\"user\":\"nobody\",\"group\":\"nogroup\"},\"agent\":true,\"sandbox\":true,\"autostart\":false,"
        "\"shutdown_timeout_sec\":7,\"on_poweroff\":\"restart\",\"on_reboot\":\"destroy\",\"on_crash\":\"preserve\",\"console_log_kib\":0,"
        "\"acl\":[{\"user\":\"nobody\",\"privileges\":[\"VM.Audit\",\"VM.PowerMgmt\"]},"
        "{\"group\":\"1500\",\"privileges\":[\"VM.Monitor\",\"Sys.Modify\"]}]}";

static bool argv_has_pair(char **argv, const char *a, const char *b) {
        for (size_t i = 0; argv[i] && argv[i + 1]; i++)
                if (streq(argv[i], a) && streq(argv[i + 1], b))
                        return true;
        return false;
}

static void test_full_definition_and_argv(void **state) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        QemuFds fds = { .qmp_fd = 3, .qga_listen_fd = 4 };
        char *error = NULL;

        assert_int_equal(vm_config_parse("x.json", "web1", full_def, strlen(full_def), &c, &error), 0);
        assert_true(c->has_run_as);
        assert_int_equal(c->run_as_uid, 65534);
        assert_int_equal(c->shutdown_timeout_sec, 7);
        assert_int_equal(c->on_poweroff, VM_ACTION_RESTART);
        assert_int_equal(c->on_reboot, VM_ACTION_DESTROY);
        assert_int_equal(c->on_crash, VM_ACTION_PRESERVE);
        assert_int_equal(c->console_log_kib, 0);
        assert_false(c->autostart);
        assert_int_equal(c->n_acl, 2);
        assert_int_equal(c->acl[0].subject, ACL_SUBJECT_USER);
        assert_int_equal(c->acl[0].id, 65534);
        assert_int_equal(c->acl[0].privileges, PRIV_BIT(PRIV_VM_AUDIT) | PRIV_BIT(PRIV_VM_POWERMGMT));
        assert_int_equal(c->acl[1].subject, ACL_SUBJECT_GROUP);
        assert_int_equal(c->acl[1].id, 1500);

        assert_int_equal(vm_config_build_argv(c, "/usr/bin/qemu-system-x86_64", &fds, &argv), 0);
        assert_string_equal(argv[0], "/usr/bin/qemu-system-x86_64");
        assert_true(argv_has_pair(argv, "-name", "guest=web1,debug-threads=on"));
        assert_true(argv_has_pair(argv, "-machine", "q35"));
        assert_true(argv_has_pair(argv, "-accel", "tcg"));
        assert_true(argv_has_pair(argv, "-smp", "2"));
        assert_true(argv_has_pair(argv, "-m", "768M"));
        assert_true(argv_has_pair(argv, "-action", "reboot=shutdown"));
        assert_true(argv_has_pair(argv, "-action", "panic=pause"));
        assert_true(c->pvpanic);
        assert_true(argv_has_pair(argv, "-device", "pvpanic,id=vmsup-pvpanic"));
        assert_true(argv_has_pair(argv, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"));
        assert_true(argv_has_pair(argv, "-chardev", "socket,id=vmsup-qmp,fd=3,server=off"));
        assert_true(argv_has_pair(argv, "-mon", "chardev=vmsup-qmp,mode=control"));
        assert_true(argv_has_pair(argv, "-chardev", "socket,id=vmsup-qga,fd=4,server=on,wait=off"));
        assert_true(argv_has_pair(argv, "-device", "virtserialport,bus=vmsup-vserial.0,chardev=vmsup-qga,"
                                                   "name=org.qemu.guest_agent.0,id=vmsup-qga-port"));
        /* A comma in a path is doubled for QEMU's option parser. */
        assert_true(argv_has_pair(argv, "-drive", "file=/var/lib/a,,b.img,format=qcow2,if=virtio,id=drive0,readonly=on"));
        assert_true(argv_has_pair(argv, "-kernel", "/k"));
        assert_true(argv_has_pair(argv, "-append", "console=ttyS0 quiet"));
        assert_true(argv_has_pair(argv, "-device", "virtio-rng-pci"));
        /* A display for the console: VNC listening nowhere, a standard VGA; the serial port in
         * a ring buffer until the supervisor moves it onto its own socket. */
        assert_true(argv_has_pair(argv, "-vnc", "none"));
        assert_true(argv_has_pair(argv, "-vga", "std"));
        assert_true(argv_has_pair(argv, "-serial", "chardev:vmsup-serial0"));
        /* Started paused: the supervisor continues it after QMP is negotiated. */
        bool has_S = false;
        for (char **a = argv; *a; a++)
                has_S = has_S || streq(*a, "-S");
        assert_true(has_S);
}

static void test_machine_none_has_no_agent_device(void **state) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL;
        _cleanup_strv_free_ char **argv = NULL;
        const char def[] = "{\"qemu\":{\"machine\":\"none\",\"accel\":\"tcg\"},\"sandbox\":false}";
        QemuFds fds = { .qmp_fd = 3, .qga_listen_fd = -1 };
        char *error = NULL;

        assert_int_equal(vm_config_parse("x.json", "n", def, strlen(def), &c, &error), 0);
        assert_false(vm_config_has_agent_device(c));
        assert_int_equal(vm_config_build_argv(c, "qemu", &fds, &argv), 0);
        for (char **a = argv; *a; a++) {
                assert_null(strstr(*a, "vmsup-qga"));
                assert_null(strstr(*a, "pvpanic"));
                assert_string_not_equal(*a, "-sandbox");
                assert_string_not_equal(*a, "-smp");
                assert_string_not_equal(*a, "-vnc");
        }
}

/* Paths and other values may contain the prefix; only ids may not. A ",," is a literal
 * comma inside a value, not a new key. */
static void test_reserved_ids_only_in_ids(void **state) {
        static const char * const ok[] = {
                "{\"qemu\":{\"extra_args\":[\"-drive\",\"file=/tmp/vmsup-x/disk.img,format=raw,if=none,id=d0\"]}}",
                "{\"qemu\":{\"extra_args\":[\"-chardev\",\"file,id=log0,path=/var/log/vmsup-web1.log\"]}}",
                "{\"qemu\":{\"extra_args\":[\"-drive\",\"file=/a,,id=vmsup-x,format=raw,id=d1\"]}}",
                "{\"qemu\":{\"extra_args\":[\"-device\",\"virtio-rng-pci,id=myvmsup-rng\"]}}",
                NULL,
        };
        for (size_t i = 0; ok[i]; i++) {
                VmConfig *c = NULL;
                char *error = NULL;
                if (vm_config_parse("t.json", "t", ok[i], strlen(ok[i]), &c, &error) < 0)
                        fail_msg("refused %s: %s", ok[i], error ?: "");
                vm_config_free(c);
        }
}

static void test_agent_file_paths(void **state) {
        _cleanup_(vm_config_freep) VmConfig *c = NULL, *e = NULL;
        static const char full[] = "{\"qemu\":{}, \"agent_file_paths\":[\"/data\",\"/tmp/allowed\",\"/\"]}";
        static const char none[] = "{\"qemu\":{}, \"agent_file_paths\":[]}";
        char *error = NULL;

        assert_int_equal(vm_config_parse("x.json", "vm1", full, strlen(full), &c, &error), 0);
        assert_int_equal(strv_length(c->agent_file_paths), 3);
        assert_string_equal(c->agent_file_paths[0], "/data");
        assert_string_equal(c->agent_file_paths[1], "/tmp/allowed");
        assert_string_equal(c->agent_file_paths[2], "/");
        assert_null(c->agent_file_paths[3]);
        /* An empty list is a list: confined to nothing, not unconfined. */
        assert_int_equal(vm_config_parse("x.json", "vm1", none, strlen(none), &e, &error), 0);
        assert_non_null(e->agent_file_paths);
        assert_null(e->agent_file_paths[0]);
}

static void test_vm_names(void **state) {
        static const char * const good[] = { "a", "_", "web1", "Web_1-x", "A234567890123456789012345678901234567890123456789012345678901234", NULL };
        static const char * const bad[] = { "", "1vm", "-x", "a.b", "a/b", "a b", "ä", "a\n",
                                            "A2345678901234567890123456789012345678901234567890123456789012345", NULL };
        for (size_t i = 0; good[i]; i++)
                assert_true(vm_name_is_valid(good[i]));
        for (size_t i = 0; bad[i]; i++)
                if (vm_name_is_valid(bad[i]))
                        fail_msg("name \"%s\" accepted", bad[i]);
}

static void test_acl_file(void **state) {
        AclEntry *acl = NULL;
        size_t n = 0;
        char *error = NULL;
        const char ok[] = "{\"acl\":[{\"user\":\"0\",\"privileges\":[\"VM.Audit\"]}]}";
        const char empty[] = "{}";
        const char bad[] = "{\"acl\":[],\"x\":1}";
        const char bad2[] = "{\"acl\":[{\"group\":\"1\",\"privileges\":[\"Nope\"]}]}";

        assert_int_equal(acl_file_parse("/etc/vmsup/acl.json", ok, strlen(ok), &acl, &n, &error), 0);
        assert_int_equal(n, 1);
        assert_int_equal(acl[0].id, 0);
        free(acl);
        acl = NULL;
        assert_int_equal(acl_file_parse("/etc/vmsup/acl.json", empty, strlen(empty), &acl, &n, &error), 0);
        assert_int_equal(n, 0);
        assert_true(acl_file_parse("/etc/vmsup/acl.json", bad, strlen(bad), &acl, &n, &error) < 0);
        assert_non_null(strstr(error, "/etc/vmsup/acl.json: $: unknown key \"x\""));
        free(error);
        error = NULL;
        assert_true(acl_file_parse("/etc/vmsup/acl.json", bad2, strlen(bad2), &acl, &n, &error) < 0);
        assert_non_null(strstr(error, "$.acl[0].privileges[0]: unknown privilege"));
        free(error);
        /* A missing host ACL is an empty one. */
        assert_int_equal(acl_file_load("/nonexistent/vmsup/acl.json", &acl, &n, &error), 0);
        assert_int_equal(n, 0);
}

static void test_load_errors(void **state) {
        VmConfig *c = NULL;
        char *error = NULL;

        assert_true(vm_config_load("/nonexistent", "vm", &c, &error) < 0);
        assert_non_null(strstr(error, "/nonexistent/vm.json: cannot open"));
        free(error);
        error = NULL;
        assert_int_equal(vm_config_load("/tmp", "../etc/passwd", &c, &error), -EINVAL);
        assert_non_null(strstr(error, "invalid VM name"));
        free(error);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_definitions),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_default_user_and_root),
                cmocka_unit_test(test_full_definition_and_argv),
                cmocka_unit_test(test_machine_none_has_no_agent_device),
                cmocka_unit_test(test_reserved_ids_only_in_ids),
                cmocka_unit_test(test_agent_file_paths),
                cmocka_unit_test(test_vm_names),
                cmocka_unit_test(test_acl_file),
                cmocka_unit_test(test_load_errors),
        };
        return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
