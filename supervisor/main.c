/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupd: one process per VM. Loads the definition, owns QEMU, its QMP and agent
 * sockets, and serves org.vmsup.VM.NAME on the bus. */

#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-direct.h"
#include "bus-fds.h"
#include "bus-object.h"
#include "config.h"
#include "launch.h"
#include "reattach.h"
#include "reload.h"
#include "log.h"
#include "machined.h"
#include "policy.h"
#include "sandbox.h"
#include "stop-orphan.h"
#include "vm.h"

#define VMSUP_VERSION "0.1"

static const char *arg_config_dir = "/etc/vmsup/vms";
static const char *arg_acl = "/etc/vmsup/acl.json";
static const char *arg_runtime_dir = "/run/vmsup";
static const char *arg_bus = "system";
static const char *arg_name = NULL;
static bool arg_check_only = false;
static bool arg_stop_orphan = false;
static SeccompMode arg_seccomp = _SECCOMP_MODE_INVALID; /* seccomp_mode_default() */

static void help(void) {
        printf("Usage: vmsupd [OPTIONS] NAME\n\n"
               "Supervises the virtual machine NAME: launches QEMU, owns its monitor and guest\n"
               "agent, and serves org.vmsup.VM.NAME on D-Bus.\n\n"
               "  --config-dir DIR     VM definitions (default /etc/vmsup/vms; reads DIR/NAME.json)\n"
               "  --acl FILE           host-wide ACL (default /etc/vmsup/acl.json; absent = empty)\n"
               "  --runtime-dir DIR    private sockets in DIR/NAME/ (default /run/vmsup)\n"
               "  --bus BUS            system, session, or a D-Bus address (default system)\n"
               "  --log-level LEVEL    err, warning, info or debug\n"
               "  --seccomp MODE       kill (default) or log: a system call outside the allowlist\n"
               "                       kills the supervisor, or only goes to the kernel's audit log\n"
               "  --check              validate the definition and the ACL, then exit\n"
               "  --stop-orphan        the unit's ExecStopPost: end the QEMU a killed supervisor left\n"
               "                       when the unit stops for good (not before a restart)\n"
               "  --list-permissions[=markdown|roff]\n"
               "                       print the HMP, QMP and agent permission tables\n"
               "  --help, --version\n");
}

/* Returns 0 to go on, 1 to exit 0, -EINVAL to exit 2. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_CONFIG_DIR = 0x100,
                ARG_ACL,
                ARG_RUNTIME_DIR,
                ARG_BUS,
                ARG_LOG_LEVEL,
                ARG_SECCOMP,
                ARG_CHECK,
                ARG_STOP_ORPHAN,
                ARG_VERSION,
                ARG_LIST_PERMISSIONS,
        };
        static const struct option options[] = {
                { "config-dir", required_argument, NULL, ARG_CONFIG_DIR },
                { "acl", required_argument, NULL, ARG_ACL },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "bus", required_argument, NULL, ARG_BUS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "seccomp", required_argument, NULL, ARG_SECCOMP },
                { "check", no_argument, NULL, ARG_CHECK },
                { "stop-orphan", no_argument, NULL, ARG_STOP_ORPHAN },
                { "list-permissions", optional_argument, NULL, ARG_LIST_PERMISSIONS },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c, level, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_CONFIG_DIR:
                        arg_config_dir = optarg;
                        break;
                case ARG_ACL:
                        arg_acl = optarg;
                        break;
                case ARG_RUNTIME_DIR:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "vmsupd: --runtime-dir must be an absolute path\n");
                                return -EINVAL;
                        }
                        arg_runtime_dir = optarg;
                        break;
                case ARG_BUS:
                        arg_bus = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        level = log_level_from_string(optarg);
                        if (level < 0) {
                                fprintf(stderr, "vmsupd: unknown log level \"%s\" (err, warning, info, debug)\n", optarg);
                                return -EINVAL;
                        }
                        log_set_max_level(level);
                        break;
                case ARG_SECCOMP:
                        arg_seccomp = seccomp_mode_from_string(optarg);
                        if (arg_seccomp < 0) {
                                fprintf(stderr, "vmsupd: unknown seccomp mode \"%s\" (kill, log)\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_CHECK:
                        arg_check_only = true;
                        break;
                case ARG_STOP_ORPHAN:
                        arg_stop_orphan = true;
                        break;
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("vmsupd %s\n", VMSUP_VERSION);
                        return 1;
                case ARG_LIST_PERMISSIONS: {
                        _cleanup_free_ char *text = NULL;
                        if (!optarg || streq(optarg, "markdown"))
                                r = policy_render_markdown(&text);
                        else if (streq(optarg, "roff"))
                                r = policy_render_roff(&text);
                        else {
                                fprintf(stderr, "vmsupd: unknown format \"%s\" (markdown, roff)\n", optarg);
                                return -EINVAL;
                        }
                        if (r < 0)
                                return -ENOMEM;
                        fputs(text, stdout);
                        return 1;
                }
                default:
                        return -EINVAL;
                }
        if (optind != argc - 1) {
                fprintf(stderr, "vmsupd: expected exactly one VM name (see --help)\n");
                return -EINVAL;
        }
        arg_name = argv[optind];
        if (!vm_name_is_valid(arg_name)) {
                fprintf(stderr, "vmsupd: invalid VM name \"%.80s\": must match " VM_NAME_RULE "\n", arg_name,
                        VM_NAME_MAX - 1);
                return -EINVAL;
        }
        return 0;
}

static int bus_connect(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (streq(arg_bus, "system"))
                r = sd_bus_open_system_with_description(&bus, "vmsupd");
        else if (streq(arg_bus, "session"))
                r = sd_bus_open_user_with_description(&bus, "vmsupd");
        else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, arg_bus);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_set_description(bus, "vmsupd");
                if (r >= 0)
                        r = sd_bus_start(bus);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the %s bus: %m", arg_bus);
        *ret = TAKE_PTR(bus);
        return 0;
}

/* After start-up: the supervisor's own confinement (sandbox.c says what and why). */
static int confine(const VmConfig *c) {
        SandboxPolicy policy = {
                .who = "vmsupd",
                .caps = sandbox_supervisor_caps(c),
                .seccomp = arg_seccomp >= 0 ? arg_seccomp : seccomp_mode_default(),
        };
        int r;

        r = sandbox_apply(&policy);
        if (r < 0)
                return log_error_errno(r, "Failed to confine the supervisor: %m");
        log_debug("Confined: capabilities %#" PRIx64 ", system call filter %s.", policy.caps,
                  seccomp_mode_to_string(policy.seccomp));
        if (policy.seccomp == SECCOMP_MODE_LOG)
                log_notice("System calls outside the allowlist are logged, not refused (--seccomp=log).");
        return 0;
}

static void notify_state(Vm *vm) {
        (void) sd_notifyf(false, "STATUS=VM %s: %s%s%s", vm->config->name, vm_state_to_string(vm->state),
                          vm->state_reason && *vm->state_reason ? " — " : "", vm->state_reason ?: "");
}

static void on_settled(Vm *vm) {
        /* QEMU runs (started, or adopted): out of the service's cgroup with it. */
        if (vm_is_running(vm))
                machined_register(vm->bus, vm->config->name, vm->pid);
        if (!vm->ready_notified) {
                vm->ready_notified = true;
                (void) sd_notify(false, "READY=1");
        }
        notify_state(vm);
        if (vm->exit_when_stopped && !vm_is_active(vm))
                (void) sd_event_exit(vm->event, 0);
}

/* The supervisor hands its VM over to the next one (an upgrade: systemd restarts the unit
 * with the binary now installed, which adopts QEMU): it exits with EXIT_HANDOVER, leaving
 * QEMU running under its launcher. Refused while QEMU is starting or stopping. */
#define EXIT_HANDOVER 3
static bool handing_over = false;

static int on_handover(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Vm *vm = userdata;

        if (vm->exit_when_stopped || vm->adopting || vm->launching ||
            IN_SET(vm->state, VM_STARTING, VM_STOPPING, VM_SHUTTING_DOWN)) {
                log_warning("VM %s: %s: not handing over while the VM is %s.", vm->config->name,
                            strsignal((int) si->ssi_signo), vm->exit_when_stopped ? "being shut down" : vm_state_to_string(vm->state));
                return 0;
        }
        log_notice("VM %s: %s: handing the VM over to the next supervisor (QEMU pid %d keeps running).",
                   vm->config->name, strsignal((int) si->ssi_signo), (int) vm->pid);
        handing_over = true;
        (void) sd_notify(false, "STATUS=Handing over to the next supervisor");
        return sd_event_exit(vm->event, 0);
}

/* A reload ended (taken or refused): ready again. */
static void on_reloaded(Vm *vm) {
        (void) sd_notify(false, "READY=1");
        notify_state(vm);
}

/* SIGHUP (systemctl reload): as Reload() (reload.h). A refusal is logged there. Signals
 * during a reload in flight make one more after it. */
static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_free_ char *why = NULL;
        Vm *vm = userdata;

        log_info("VM %s: %s: reloading the definition and the host ACL.", vm->config->name,
                 strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "RELOADING=1");
        if (vm_reload(vm, NULL, &why) < 0)
                on_reloaded(vm);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Vm *vm = userdata;

        if (vm->exit_when_stopped) {
                /* A second request: no more patience. */
                log_info("Signal %s again, stopping the VM hard.", strsignal((int) si->ssi_signo));
                if (vm_is_active(vm))
                        (void) vm_stop(vm, NULL);
                return 0;
        }
        vm->exit_when_stopped = true;
        (void) sd_notify(false, "STOPPING=1");
        if (vm->launching) {
                /* The launcher is forking QEMU: it is stopped as soon as it is there. */
                log_info("Signal %s: stopping the VM once its QEMU is there.", strsignal((int) si->ssi_signo));
                return 0;
        }
        if (!vm_is_active(vm)) {
                (void) sd_event_exit(vm->event, 0);
                return 0;
        }
        log_info("Signal %s: shutting the VM down (%u s, then forced).", strsignal((int) si->ssi_signo),
                 vm->config->shutdown_timeout_sec);
        if (vm_shutdown(vm, 0, true, NULL) < 0)
                (void) vm_stop(vm, NULL);
        return 0;
}

/* Allocations from this size on are mapped on their own (mallopt(M_MMAP_THRESHOLD)). */
#define VMSUPD_MMAP_THRESHOLD (256 * 1024)

int main(int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(vm_config_freep) VmConfig *config = NULL;
        _cleanup_free_ AclEntry *host_acl = NULL;
        _cleanup_free_ char *error = NULL, *bus_name = NULL, *vm_runtime_dir = NULL, *direct_path = NULL;
        Reattach reattach;
        /* Declared before the VM, so freed after it: freeing the VM ends the calls still in
         * flight, and their replies use the object's state. */
        _cleanup_(bus_object_freep) BusObject *object = NULL;
        /* Its connections use the object: freed before it, after the VM. */
        _cleanup_(bus_direct_freep) BusDirect *direct = NULL;
        _cleanup_(vm_freep) Vm *vm = NULL;
        size_t n_host_acl = 0;
        sigset_t ss;
        int r;

        if (getenv("JOURNAL_STREAM"))
                log_set_prefix(true);
        r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : 2;
        if (arg_stop_orphan)
                return stop_orphan_run(arg_runtime_dir, arg_name) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        /* Buffers of megabytes come and go (agent file chunks, long reply lines). A fixed
         * mmap threshold gives each back to the kernel when it is freed and lets realloc
         * grow it with mremap instead of a copy; glibc's default threshold rises after the
         * first such free and would keep them in the heap, copied on growth, retained. */
        (void) mallopt(M_MMAP_THRESHOLD, VMSUPD_MMAP_THRESHOLD);

        r = vm_config_load(arg_config_dir, arg_name, &config, &error);
        if (r < 0) {
                fprintf(stderr, "vmsupd: %s\n", error ?: strerror(-r));
                return 2;
        }
        r = acl_file_load(arg_acl, &host_acl, &n_host_acl, &error);
        if (r < 0) {
                fprintf(stderr, "vmsupd: %s\n", error ?: strerror(-r));
                return 2;
        }
        if (arg_check_only) {
                printf("%s: valid\n", config->path);
                return EXIT_SUCCESS;
        }

        /* The loop handles these; nothing else may see them first. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGCHLD);
        sigaddset(&ss, SIGUSR2);
        sigaddset(&ss, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m"), EXIT_FAILURE;
        (void) signal(SIGPIPE, SIG_IGN);
        umask(0077);

        /* Before the loop, the bus and the confinement: QEMU must not start from a process
         * carrying the supervisor's system call filter or its reduced capabilities. */
        /* A QEMU the previous supervisor of this VM left running (a crash, a kill, an
         * upgrade) is adopted together with its launcher; otherwise we fork our own. */
        if (asprintf(&vm_runtime_dir, "%s/%s", arg_runtime_dir, config->name) < 0)
                return log_oom(), EXIT_FAILURE;
        if ((mkdir(arg_runtime_dir, 0755) < 0 && errno != EEXIST) ||
            (mkdir(vm_runtime_dir, 0700) < 0 && errno != EEXIST) || chmod(vm_runtime_dir, 0700) < 0)
                return log_error_errno(errno, "Failed to create %s: %m", vm_runtime_dir), EXIT_FAILURE;
        reattach_prepare(vm_runtime_dir, config->name, &reattach);
        if (reattach.busy)
                return EXIT_FAILURE; /* its launcher and socket are not ours to replace */
        if (reattach.verdict == ADOPT_ATTACH) {
                r = launcher_use(&reattach.launcher);
                if (r >= 0) {
                        /* The launcher kept the definition of the supervisor that forked it: the
                         * next QEMU starts from this one's. */
                        _cleanup_free_ char *why = NULL;
                        int k = launch_reload_sync(config->text, config->text_len, &why);
                        if (k < 0)
                                log_warning_errno(k, "VM %s: the adopted launcher keeps its definition for the next start: %s",
                                                  config->name, why ?: strerror(-k));
                }
        } else {
                launch_adoption_release(&reattach.launcher);
                r = launcher_fork(config, vm_runtime_dir);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to start the QEMU launcher: %m"), EXIT_FAILURE;

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m"), EXIT_FAILURE;
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        r = vm_new(event, TAKE_PTR(config), TAKE_PTR(host_acl), n_host_acl, arg_runtime_dir, &vm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the VM: %m"), EXIT_FAILURE;
        vm->on_settled = on_settled;
        vm->on_reloaded = on_reloaded;
        vm_reload_setup(vm, arg_acl);
        r = launcher_attach(event);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the QEMU launcher: %m"), EXIT_FAILURE;

        r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, vm);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_signal, vm);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGUSR2, on_handover, vm);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGHUP, on_reload, vm);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m"), EXIT_FAILURE;

        r = bus_connect(&bus);
        if (r < 0)
                return EXIT_FAILURE;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the loop: %m"), EXIT_FAILURE;
        /* Without the bus nobody can manage the VM: exit with a failure status and let the
         * service manager restart the supervisor. */
        (void) sd_bus_set_exit_on_disconnect(bus, true);
        /* Before anything is read from the bus, and before the system call filter. */
        r = bus_fds_setup(bus);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the handling of callers' descriptors: %m"), EXIT_FAILURE;
        r = bus_object_new(vm, bus, &object);
        if (r < 0)
                return log_error_errno(r, "Failed to register the D-Bus objects: %m"), EXIT_FAILURE;

        /* The same object for direct connections, past the bus daemon (bus-direct.h). */
        if (asprintf(&direct_path, "%s.bus", vm_runtime_dir) < 0)
                return log_oom(), EXIT_FAILURE;
        r = bus_direct_new(event, object, direct_path, &direct);
        if (r < 0)
                return log_error_errno(r, "Failed to listen on %s: %m", direct_path), EXIT_FAILURE;

        /* Every method can be answered now: take the name. */
        if (asprintf(&bus_name, "org.vmsup.VM.%s", vm->config->name) < 0)
                return log_oom(), EXIT_FAILURE;
        r = sd_bus_request_name(bus, bus_name, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name %s: %m", bus_name), EXIT_FAILURE;
        log_info("VM %s: serving %s", vm->config->name, bus_name);

        /* Start-up is over: from here on, callers' and QEMU's bytes are read. */
        if (confine(vm->config) < 0)
                return EXIT_FAILURE;
        vm_reload_confined();

        if (reattach.verdict != ADOPT_NOTHING)
                reattach_apply(vm, &reattach);
        if (vm->adopting)
                ; /* settled once QEMU says whether the VM runs */
        else if (vm->config->autostart && reattach.verdict == ADOPT_NOTHING) {
                /* Not after a refused run record: its QEMU may still run, on the same disks. */
                r = vm_start(vm, NULL);
                if (r < 0) {
                        log_warning_errno(r, "VM %s: autostart failed: %m", vm->config->name);
                        on_settled(vm);
                }
        } else
                on_settled(vm);

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
        /* Losing the bus is a failure (sd-bus ends the loop with EXIT_FAILURE; it closes the
         * bus at any exit of the loop, so that is the one sign): the service manager's
         * Restart=on-failure brings the supervisor back. */
        if (r != 0) {
                log_error("VM %s: the bus connection was lost, exiting.", vm->config->name);
                return EXIT_FAILURE;
        }

        machined_forget();
        /* A failure status, so that Restart=on-failure starts the next supervisor. */
        return handing_over ? EXIT_HANDOVER : EXIT_SUCCESS;
}
