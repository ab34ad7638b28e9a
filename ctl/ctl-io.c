/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: the monitor (HMP, QMP), the guest agent, signals and file transfer
 * (what busctl cannot do: it passes no file descriptors). */

#include <fcntl.h>
#include <inttypes.h>

#include <systemd/sd-event.h>

#include "ctl.h"

/* Monitor and agent calls are bounded by the supervisor (QMP and agent timeouts);
 * this only guards against a supervisor that stopped answering at all. */
#define CTL_CALL_TIMEOUT_USEC (600 * USEC_PER_SEC)

static char *join_args(char **args, size_t n) {
        size_t len = 1;
        char *s, *p;

        for (size_t i = 0; i < n; i++)
                len += strlen(args[i]) + 1;
        s = p = malloc(len);
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                p = stpcpy(stpcpy(p, i > 0 ? " " : ""), args[i]);
        *p = '\0';
        return s;
}

int verb_monitor(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *line = join_args(args + 1, n - 1);
        const char *out;
        int r;

        if (!line)
                return ctl_bus_fail(-ENOMEM, "monitor");
        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        r = ctl_call(bus, args[0], MONITOR_IFACE, "HumanCommand", CTL_CALL_TIMEOUT_USEC, &reply, "s", line);
        if (r > 0)
                return r;
        r = sd_bus_message_read(reply, "s", &out);
        if (r < 0)
                return ctl_bus_fail(r, args[0]);
        if (arg.json) {
                json_auto_t *j = json_pack("{s:s}", "output", out);
                return j ? ctl_print_json(j, false) : ctl_bus_fail(-ENOMEM, "monitor");
        }
        fputs(out, stdout);
        if (*out && out[strlen(out) - 1] != '\n')
                putchar('\n');
        return 0;
}

/* COMMAND [ARGUMENTS_JSON], or one whole JSON object: the request as a string. */
static int build_request(char **args, size_t n, char **ret) {
        json_auto_t *req = NULL, *arguments = NULL;
        json_error_t jerr;

        if (n == 1 && args[0][0] == '{') {
                *ret = strdup(args[0]);
                return *ret ? 0 : -ENOMEM;
        }
        if (n > 2) {
                fprintf(stderr, "vmsupctl: give COMMAND and at most one JSON object of arguments\n");
                return -EINVAL;
        }
        if (n == 2) {
                arguments = json_loads(args[1], JSON_DECODE_ANY, &jerr);
                if (!arguments || !json_is_object(arguments)) {
                        fprintf(stderr, "vmsupctl: the arguments are not a JSON object: %s\n",
                                arguments ? "another JSON type" : jerr.text);
                        return -EINVAL;
                }
        }
        req = json_pack("{s:s}", "execute", args[0]);
        if (!req || (arguments && json_object_set(req, "arguments", arguments) < 0))
                return -ENOMEM;
        *ret = json_dumps(req, JSON_COMPACT);
        return *ret ? 0 : -ENOMEM;
}

static int json_verb(char **args, size_t n, const char *iface, const char *method) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *request = NULL;
        json_auto_t *j = NULL;
        const char *out;
        int r;

        r = build_request(args + 1, n - 1, &request);
        if (r == -EINVAL)
                return CTL_EXIT_USAGE;
        if (r < 0)
                return ctl_bus_fail(r, method);
        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        r = ctl_call(bus, args[0], iface, method, CTL_CALL_TIMEOUT_USEC, &reply, "s", request);
        if (r > 0)
                return r;
        r = sd_bus_message_read(reply, "s", &out);
        if (r < 0)
                return ctl_bus_fail(r, args[0]);
        j = json_loads(out, JSON_DECODE_ANY, NULL);
        if (!j) { /* not expected from the supervisor: shown as it came */
                puts(out);
                return 0;
        }
        return ctl_print_json(j, !arg.json);
}

int verb_qmp(char **args, size_t n) {
        return json_verb(args, n, MONITOR_IFACE, "Execute");
}

int verb_agent(char **args, size_t n) {
        return json_verb(args, n, AGENT_IFACE, "Command");
}

/* ---- events ---- */

static uint64_t n_seen = 0;

static void print_line_json(json_t *j) {
        _cleanup_free_ char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (s)
                puts(s);
}

static void print_state_changed(const char *state, const char *reason) {
        if (arg.json) {
                json_auto_t *j = json_pack("{s:s, s:s, s:s}", "type", "StateChanged", "state", state, "reason",
                                           reason);
                print_line_json(j);
        } else
                printf("StateChanged %s %s\n", state, reason);
}

static void print_event(const char *name, const char *data, uint64_t ts) {
        if (arg.json) {
                json_t *d = json_loads(data, JSON_DECODE_ANY, NULL) ?: json_string(data);
                json_auto_t *j = json_pack("{s:s, s:s, s:o, s:I}", "type", "Event", "name", name, "data", d,
                                           "timestamp_usec", (json_int_t) ts);
                print_line_json(j);
        } else
                printf("Event %s %s %" PRIu64 "\n", name, data, ts);
}

/* Returns true when --count is reached. */
static bool count_one(void) {
        fflush(stdout);
        return arg.count > 0 && ++n_seen >= arg.count;
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *member = sd_bus_message_get_member(m);
        int r;

        if (streq(member, "StateChanged")) {
                const char *state, *reason;
                r = sd_bus_message_read(m, "ss", &state, &reason);
                if (r < 0)
                        return r;
                print_state_changed(state, reason);
        } else if (streq(member, "Event")) {
                const char *name, *data;
                uint64_t ts;
                r = sd_bus_message_read(m, "sst", &name, &data, &ts);
                if (r < 0)
                        return r;
                print_event(name, data, ts);
        } else
                return 0;
        if (count_one())
                sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
        return 0;
}

/* The buffered events after since, up to and including last (those after last come as
 * signals). Returns 1 when --count is reached, 0, or an exit status < 0 on failure. */
static int print_buffered(sd_bus *bus, const char *name, uint64_t since, uint64_t last) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = ctl_call(bus, name, VM_IFACE, "GetEvents", 0, &reply, "t", since);
        if (r != 0)
                return -r;
        r = sd_bus_message_enter_container(reply, 'a', "(tsst)");
        if (r < 0)
                return -ctl_bus_fail(r, "events");
        for (;;) {
                const char *ev, *data;
                uint64_t seq, ts;

                r = sd_bus_message_read(reply, "(tsst)", &seq, &ev, &data, &ts);
                if (r < 0)
                        return -ctl_bus_fail(r, "events");
                if (r == 0 || seq > last)
                        break;
                if (streq(ev, "StateChanged")) {
                        json_auto_t *j = json_loads(data, 0, NULL);
                        const char *st = json_string_value(json_object_get(j, "state"));
                        const char *why = json_string_value(json_object_get(j, "reason"));
                        print_state_changed(st ?: "", why ?: "");
                } else
                        print_event(ev, data, ts);
                if (count_one())
                        return 1;
        }
        return 0;
}

/* Signals reach subscribers only (VM.Audit): subscribe, then follow them. */
int verb_events(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_free_ char *dest = NULL;
        uint64_t last;
        int r;

        if (asprintf(&dest, VM_BUS_PREFIX "%s", args[0]) < 0)
                return ctl_bus_fail(-ENOMEM, "events");
        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        r = sd_event_default(&event);
        if (r < 0)
                return ctl_bus_fail(r, "events");
        r = sd_bus_attach_event(bus, event, 0);
        if (r < 0)
                return ctl_bus_fail(r, "events");
        /* Nothing more will come once the bus is gone. */
        (void) sd_bus_set_exit_on_disconnect(bus, true);
        /* The signals come addressed to this connection; the match only selects them. */
        r = sd_bus_match_signal(bus, NULL, dest, VM_OBJECT, VM_IFACE, NULL, on_signal, NULL);
        if (r < 0)
                return ctl_bus_fail(r, "cannot follow signals");
        /* Every signal sent after the reply follows it on this connection: they are
         * dispatched after it, and the events up to last come from the buffer. */
        r = ctl_call(bus, args[0], VM_IFACE, "Subscribe", 0, &reply, NULL);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "t", &last);
        if (r < 0)
                return ctl_bus_fail(r, "events");
        if (arg.json)
                printf("{\"type\":\"READY\",\"vm\":\"%s\",\"seq\":%" PRIu64 "}\n", args[0], last);
        else
                printf("READY %" PRIu64 "\n", last);
        fflush(stdout);
        if (arg.have_since) {
                r = print_buffered(bus, args[0], arg.since, last);
                if (r < 0)
                        return -r;
                if (r > 0)
                        return 0;
        }
        if (arg.timeout_sec > 0) {
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg.timeout_sec * USEC_PER_SEC, 0, NULL,
                                               INT_TO_PTR(0));
                if (r < 0)
                        return ctl_bus_fail(r, "events");
        }
        r = sd_event_loop(event);
        return r < 0 ? ctl_bus_fail(r, "events") : 0;
}

/* ---- files ---- */

static int call_file(const char *name, const char *method, const char *guest_path, int fd) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t bytes;
        int r;

        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        /* Large files through a slow guest take long: the supervisor bounds each agent call. */
        if (streq(method, "ReadFile"))
                r = ctl_call(bus, name, AGENT_IFACE, method, UINT64_MAX, &reply, "stth", guest_path, arg.offset,
                             arg.length, fd);
        else
                r = ctl_call(bus, name, AGENT_IFACE, method, UINT64_MAX, &reply, "shb", guest_path, fd,
                             (int) arg.append);
        if (r > 0)
                return r;
        r = sd_bus_message_read(reply, "t", &bytes);
        if (r < 0)
                return ctl_bus_fail(r, name);
        if (arg.json)
                printf("{\"bytes\":%" PRIu64 "}\n", bytes);
        else
                printf("%" PRIu64 "\n", bytes);
        return 0;
}

int verb_read_file(char **args, size_t n) {
        _cleanup_close_ int fd = open(args[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);

        if (fd < 0) {
                fprintf(stderr, "vmsupctl: cannot open %s: %m\n", args[2]);
                return CTL_EXIT_FAILURE;
        }
        return call_file(args[0], "ReadFile", args[1], fd);
}

int verb_write_file(char **args, size_t n) {
        _cleanup_close_ int fd = open(args[1], O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0) {
                fprintf(stderr, "vmsupctl: cannot open %s: %m\n", args[1]);
                return CTL_EXIT_FAILURE;
        }
        return call_file(args[0], "WriteFile", args[2], fd);
}
