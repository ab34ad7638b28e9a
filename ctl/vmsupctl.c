/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: the command-line client of vmsupd. One verb per thing the VM's
 * interfaces offer; every verb is one or a few D-Bus calls, authorized by the
 * supervisor like any other caller's. */

#include <getopt.h>

#include "config.h"
#include "ctl.h"

#define VMSUPCTL_VERSION "0.1"

CtlArgs arg = { .direct = -1 };

enum {
        OPT_JSON = 1 << 0,
        OPT_COUNT = 1 << 1,
        OPT_TIMEOUT = 1 << 2,
        OPT_FORCE = 1 << 3,
        OPT_OFFSET = 1 << 4,
        OPT_LENGTH = 1 << 5,
        OPT_APPEND = 1 << 6,
        OPT_HOLD = 1 << 7,
        OPT_NAME = 1 << 8,
        OPT_PAUSED = 1 << 9,
        OPT_LISTEN = 1 << 10,
        OPT_SINCE = 1 << 11,
        OPT_FORMAT = 1 << 12,
        OPT_MIGRATE = 1 << 13, /* --max-bandwidth, --downtime-limit, --auto-converge */
        OPT_LOCAL_DISK = 1 << 14,
};

typedef struct Verb {
        const char *name;
        const char *usage;
        const char *summary;
        size_t min_args, max_args; /* after the verb; SIZE_MAX: any number */
        unsigned options;          /* which verb options it takes */
        int (*run)(char **args, size_t n);
        const char *method;        /* for verb_simple */
} Verb;

static int run_simple(char **args, size_t n);

static const Verb verbs[] = {
        { "list", "list [--name]", "every VM on the bus, with its state", 0, 0, OPT_JSON | OPT_NAME, verb_list, NULL },
        { "status", "status NAME", "properties and status of VM NAME", 1, 1, OPT_JSON, verb_status, NULL },
        { "start", "start NAME [--paused]",
          "start QEMU; returns once the VM runs (--paused: with its CPUs stopped, until resume)", 1, 1, OPT_PAUSED,
          verb_start, NULL },
        { "stop", "stop NAME", "hard stop: QMP quit, then SIGTERM, then SIGKILL", 1, 1, 0, run_simple, "Stop" },
        { "shutdown", "shutdown NAME [--timeout SEC] [--force]",
          "ACPI power-down (or the agent's); --force stops it hard after the timeout", 1, 1, OPT_TIMEOUT | OPT_FORCE,
          verb_shutdown, NULL },
        { "reboot", "reboot NAME [--timeout SEC]",
          "reboot the guest (agent, else ACPI power-down and a fresh QEMU); returns once it runs again", 1, 1,
          OPT_TIMEOUT, verb_reboot, NULL },
        { "reset", "reset NAME", "system reset", 1, 1, 0, run_simple, "Reset" },
        { "pause", "pause NAME", "stop the virtual CPUs", 1, 1, 0, run_simple, "Pause" },
        { "resume", "resume NAME", "let the virtual CPUs run again", 1, 1, 0, run_simple, "Resume" },
        { "reload", "reload NAME",
          "re-read the definition and the host ACL (root): ACL changes at once, QEMU settings at the next start",
          1, 1, 0, run_simple, "Reload" },
        { "sendkey", "sendkey NAME KEY... [--hold-ms MS]", "press keys (QKeyCode names; ctrl+alt+delete)", 2,
          SIZE_MAX, OPT_HOLD, verb_sendkey, NULL },
        { "monitor", "monitor NAME COMMAND...", "one HMP command line; prints its output", 2, SIZE_MAX, OPT_JSON,
          verb_monitor, NULL },
        { "qmp", "qmp NAME COMMAND [ARGUMENTS_JSON] | qmp NAME QMP_JSON", "one QMP command; prints its return",
          2, 3, OPT_JSON, verb_qmp, NULL },
        { "agent", "agent NAME COMMAND [ARGUMENTS_JSON] | agent NAME QGA_JSON",
          "one guest-agent command; prints its return", 2, 3, OPT_JSON, verb_agent, NULL },
        { "events", "events NAME [--since SEQ] [--count N] [--timeout SEC]",
          "subscribe; print StateChanged and Event as they come (--since: the buffered ones after SEQ first)", 1, 1,
          OPT_JSON | OPT_COUNT | OPT_TIMEOUT | OPT_SINCE,
          verb_events, NULL },
        { "stats", "stats NAME [GROUP...]",
          "statistics (GetStats): state, cpu-total, vcpu, balloon, block, agent; none = all", 1, SIZE_MAX, OPT_JSON,
          verb_stats, NULL },
        { "metrics", "metrics [NAME...] [--format prometheus|openmetrics]",
          "statistics of every VM (or those named): the Prometheus text format (default), which node-exporter's "
          "textfile collector reads, or OpenMetrics",
          0, SIZE_MAX, OPT_FORMAT, verb_metrics, NULL },
        { "read-file", "read-file NAME GUEST_PATH LOCAL_FILE [--offset N] [--length N]",
          "copy a guest file out through the agent", 3, 3, OPT_JSON | OPT_OFFSET | OPT_LENGTH, verb_read_file, NULL },
        { "write-file", "write-file NAME LOCAL_FILE GUEST_PATH [--append]",
          "copy a local file into the guest through the agent", 3, 3, OPT_JSON | OPT_APPEND, verb_write_file, NULL },
        { "console", "console NAME [--force]",
          "the serial console in this terminal (Ctrl-] leaves); --force takes an open session over", 1, 1,
          OPT_FORCE, verb_console, NULL },
        { "vnc", "vnc NAME --listen unix:PATH|127.0.0.1:PORT",
          "serve local VNC viewers, each through its own OpenVNC", 1, 1, OPT_LISTEN, verb_vnc, NULL },
        { "screenshot", "screenshot NAME FILE.png", "a PNG of the VM's screen", 2, 2, 0, verb_screenshot, NULL },
        { "migrate", "migrate NAME [--max-bandwidth BYTES_PER_SEC] [--downtime-limit MS] [--auto-converge] [--local-disk] [--timeout SEC] -- COMMAND...",
          "live-migrate the VM into COMMAND's standard input and output (e.g. ssh HOST vmsupctl migrate-in NAME)",
          2, SIZE_MAX, OPT_JSON | OPT_MIGRATE | OPT_LOCAL_DISK | OPT_TIMEOUT, verb_migrate, NULL },
        { "migrate-in", "migrate-in NAME [--local-disk] [--timeout SEC]",
          "receive the VM from a migration on standard input and output; returns once it runs here", 1, 1,
          OPT_JSON | OPT_LOCAL_DISK | OPT_TIMEOUT,
          verb_migrate_in, NULL },
};

static const Verb *current_verb = NULL;

static int run_simple(char **args, size_t n) {
        return verb_simple(args, n, current_verb->method);
}

static void help(void) {
        printf("Usage: vmsupctl [--bus system|session|ADDRESS] [--direct|--no-direct] [--json] VERB ...\n\n"
               "Controls the virtual machines that vmsupd supervises (org.vmsup.VM.NAME on D-Bus).\n\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n        %s\n", verbs[i].usage, verbs[i].summary);
        printf("\nOptions:\n"
               "  --bus BUS       system (default, or $VMSUP_BUS), session, or a D-Bus address\n"
               "  --direct        call the VM's supervisor on its own socket only (RUNTIME/NAME.bus);\n"
               "                  without --bus, vmsupctl uses it when it answers, else the bus\n"
               "  --no-direct     the bus only\n"
               "  --runtime-dir DIR  where the direct sockets are (/run/vmsup, or $VMSUP_RUNTIME_DIR)\n"
               "  --json          print data as JSON (list, status, stats, monitor, qmp, agent, events,\n"
               "                  read-file, write-file, migrate, migrate-in)\n"
               "  -h, --help, --version\n\n"
               "Exit status: 0 done, 1 failed, 2 usage error or invalid arguments, 3 the VM is not\n"
               "running, 4 access denied, 5 no such VM on the bus. See vmsupctl(1).\n");
}

static const struct {
        unsigned bit;
        const char *name;
} option_names[] = {
        { OPT_JSON, "--json" },     { OPT_COUNT, "--count" },   { OPT_TIMEOUT, "--timeout" },
        { OPT_FORCE, "--force" },   { OPT_OFFSET, "--offset" }, { OPT_LENGTH, "--length" },
        { OPT_APPEND, "--append" }, { OPT_HOLD, "--hold-ms" },  { OPT_NAME, "--name" },
        { OPT_PAUSED, "--paused" },
        { OPT_LISTEN, "--listen" },
        { OPT_SINCE, "--since" },
        { OPT_MIGRATE, "--max-bandwidth, --downtime-limit or --auto-converge" },
        { OPT_LOCAL_DISK, "--local-disk" },
        { OPT_FORMAT, "--format" },
};

int main(int argc, char *argv[]) {
        enum {
                ARG_BUS = 0x100,
                ARG_JSON,
                ARG_COUNT,
                ARG_TIMEOUT,
                ARG_FORCE,
                ARG_OFFSET,
                ARG_LENGTH,
                ARG_APPEND,
                ARG_HOLD,
                ARG_NAME,
                ARG_PAUSED,
                ARG_LISTEN,
                ARG_MAX_BANDWIDTH,
                ARG_DOWNTIME_LIMIT,
                ARG_AUTO_CONVERGE,
                ARG_LOCAL_DISK,
                ARG_SINCE,
                ARG_FORMAT,
                ARG_VERSION,
                ARG_DIRECT,
                ARG_NO_DIRECT,
                ARG_RUNTIME_DIR,
        };
        static const struct option options[] = {
                { "bus", required_argument, NULL, ARG_BUS },
                { "json", no_argument, NULL, ARG_JSON },
                { "count", required_argument, NULL, ARG_COUNT },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "force", no_argument, NULL, ARG_FORCE },
                { "offset", required_argument, NULL, ARG_OFFSET },
                { "length", required_argument, NULL, ARG_LENGTH },
                { "append", no_argument, NULL, ARG_APPEND },
                { "hold-ms", required_argument, NULL, ARG_HOLD },
                { "name", no_argument, NULL, ARG_NAME },
                { "paused", no_argument, NULL, ARG_PAUSED },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "since", required_argument, NULL, ARG_SINCE },
                { "max-bandwidth", required_argument, NULL, ARG_MAX_BANDWIDTH },
                { "downtime-limit", required_argument, NULL, ARG_DOWNTIME_LIMIT },
                { "auto-converge", no_argument, NULL, ARG_AUTO_CONVERGE },
                { "local-disk", no_argument, NULL, ARG_LOCAL_DISK },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "direct", no_argument, NULL, ARG_DIRECT },
                { "no-direct", no_argument, NULL, ARG_NO_DIRECT },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        unsigned given = 0;
        size_t n;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                uint64_t *target = NULL;

                switch (c) {
                case ARG_BUS:
                        arg.bus = optarg;
                        break;
                case ARG_DIRECT:
                        arg.direct = 1;
                        break;
                case ARG_NO_DIRECT:
                        arg.direct = 0;
                        break;
                case ARG_RUNTIME_DIR:
                        arg.runtime_dir = optarg;
                        break;
                case ARG_JSON:
                        arg.json = true;
                        given |= OPT_JSON;
                        break;
                case ARG_COUNT:
                        target = &arg.count;
                        given |= OPT_COUNT;
                        break;
                case ARG_TIMEOUT:
                        target = &arg.timeout_sec;
                        arg.have_timeout = true;
                        given |= OPT_TIMEOUT;
                        break;
                case ARG_FORCE:
                        arg.force = true;
                        given |= OPT_FORCE;
                        break;
                case ARG_OFFSET:
                        target = &arg.offset;
                        given |= OPT_OFFSET;
                        break;
                case ARG_LENGTH:
                        target = &arg.length;
                        given |= OPT_LENGTH;
                        break;
                case ARG_APPEND:
                        arg.append = true;
                        given |= OPT_APPEND;
                        break;
                case ARG_HOLD:
                        target = &arg.hold_ms;
                        given |= OPT_HOLD;
                        break;
                case ARG_NAME:
                        arg.names_only = true;
                        given |= OPT_NAME;
                        break;
                case ARG_PAUSED:
                        arg.paused = true;
                        given |= OPT_PAUSED;
                        break;
                case ARG_LISTEN:
                        arg.listen = optarg;
                        given |= OPT_LISTEN;
                        break;
                case ARG_SINCE:
                        target = &arg.since;
                        arg.have_since = true;
                        given |= OPT_SINCE;
                        break;
                case ARG_MAX_BANDWIDTH:
                        target = &arg.max_bandwidth;
                        arg.have_max_bandwidth = true;
                        given |= OPT_MIGRATE;
                        break;
                case ARG_DOWNTIME_LIMIT:
                        target = &arg.downtime_limit_ms;
                        arg.have_downtime_limit = true;
                        given |= OPT_MIGRATE;
                        break;
                case ARG_AUTO_CONVERGE:
                        arg.auto_converge = true;
                        given |= OPT_MIGRATE;
                        break;
                case ARG_LOCAL_DISK:
                        arg.local_disk = true;
                        given |= OPT_LOCAL_DISK;
                        break;
                case ARG_FORMAT:
                        if (streq(optarg, "openmetrics"))
                                arg.openmetrics = true;
                        else if (streq(optarg, "prometheus"))
                                arg.openmetrics = false;
                        else {
                                fprintf(stderr, "vmsupctl: --format must be prometheus or openmetrics, not \"%.80s\"\n",
                                        optarg);
                                return CTL_EXIT_USAGE;
                        }
                        given |= OPT_FORMAT;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vmsupctl %s\n", VMSUPCTL_VERSION);
                        return 0;
                default:
                        return CTL_EXIT_USAGE;
                }
                if (target && safe_atou64(optarg, target) < 0) {
                        fprintf(stderr, "vmsupctl: not a number: %s\n", optarg);
                        return CTL_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                help();
                return CTL_EXIT_USAGE;
        }
        if (streq(argv[optind], "help")) {
                help();
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[optind]))
                        current_verb = &verbs[i];
        if (!current_verb) {
                fprintf(stderr, "vmsupctl: unknown verb \"%s\" (see --help)\n", argv[optind]);
                return CTL_EXIT_USAGE;
        }
        n = (size_t) (argc - optind - 1);
        if (n < current_verb->min_args || n > current_verb->max_args) {
                fprintf(stderr, "vmsupctl: usage: vmsupctl %s\n", current_verb->usage);
                return CTL_EXIT_USAGE;
        }
        /* --json is accepted everywhere (a verb without data prints nothing); the others only where they mean something. */
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if ((given & option_names[i].bit) && option_names[i].bit != OPT_JSON &&
                    !(current_verb->options & option_names[i].bit)) {
                        fprintf(stderr, "vmsupctl: %s does not take %s\n", current_verb->name, option_names[i].name);
                        return CTL_EXIT_USAGE;
                }
        if (n > 0 && !vm_name_is_valid(argv[optind + 1])) {
                fprintf(stderr, "vmsupctl: invalid VM name \"%.80s\": must match " VM_NAME_RULE "\n",
                        argv[optind + 1], VM_NAME_MAX - 1);
                return CTL_EXIT_USAGE;
        }
        return current_verb->run(argv + optind + 1, n);
}
