/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: the monitor (HMP, QMP), the guest agent, signals and file transfer
 * (what busctl cannot do: it passes no file descriptors). */

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>

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
        r = ctl_bus_open_vm(args[0], &bus);
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
        r = ctl_bus_open_vm(args[0], &bus);
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
        r = ctl_bus_open_vm(args[0], &bus);
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
        r = sd_bus_match_signal(bus, NULL, ctl_dest(bus, dest), VM_OBJECT, VM_IFACE, NULL, on_signal, NULL);
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

/* The supervisor takes only pipes, FIFOs and AF_UNIX stream sockets: those are handed
 * over as they are, any other local file is copied through a pipe while the call runs.
 * 1 MiB is the most an unprivileged process may ask for (pipe-max-size's default). */
#define TRANSFER_PIPE_SIZE (1024 * 1024)

typedef struct Transfer {
        const char *name;
        bool reading;     /* ReadFile: pipe → file */
        int file_fd;
        int pipe_fd;      /* our end */
        bool pipe_done;   /* EOF seen (ReadFile) or our end closed (WriteFile) */
        bool replied;
        int status;       /* exit status once something failed (> 0) */
        uint64_t bytes, copied;
        sd_event_source *io;
} Transfer;

static void transfer_maybe_done(Transfer *t, sd_event *event) {
        /* ReadFile: the reply says how much was sent; what is still in the pipe comes after. */
        if (t->replied && (t->status > 0 || t->pipe_done || (t->reading && t->copied >= t->bytes)))
                (void) sd_event_exit(event, 0);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int on_pipe(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static char buf[TRANSFER_PIPE_SIZE];
        Transfer *t = userdata;
        ssize_t k;

        if (t->reading) {
                k = read(fd, buf, sizeof buf);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (k < 0) {
                        fprintf(stderr, "vmsupctl: cannot read the pipe: %m\n");
                        t->status = CTL_EXIT_FAILURE;
                }
                if (k > 0) {
                        int r = write_all(t->file_fd, buf, (size_t) k);
                        if (r < 0) {
                                fprintf(stderr, "vmsupctl: cannot write the local file: %s\n", strerror(-r));
                                t->status = CTL_EXIT_FAILURE;
                        }
                        t->copied += (uint64_t) k;
                }
                if (k <= 0 || t->status > 0) {
                        t->pipe_done = true;
                        t->io = sd_event_source_disable_unref(t->io);
                        if (!t->replied)
                                /* Our end closed: the supervisor's next write fails and it answers. */
                                t->pipe_fd = safe_close(t->pipe_fd);
                }
        } else {
                k = read(t->file_fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        return 0;
                if (k < 0) {
                        fprintf(stderr, "vmsupctl: cannot read the local file: %m\n");
                        t->status = CTL_EXIT_FAILURE;
                }
                if (k > 0 && write_all(fd, buf, (size_t) k) < 0)
                        k = 0; /* the supervisor stopped reading: its reply says why */
                if (k <= 0) {
                        t->io = sd_event_source_disable_unref(t->io);
                        t->pipe_fd = safe_close(t->pipe_fd); /* EOF for the supervisor */
                        t->pipe_done = true;
                }
        }
        transfer_maybe_done(t, sd_event_source_get_event(s));
        return 0;
}

static int on_file_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Transfer *t = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        t->replied = true;
        if (e) {
                /* Mapped as ctl_call does; after a local failure, that one was already said. */
                if (t->status == 0)
                        t->status = ctl_error_status(t->name, e, -sd_bus_message_get_errno(reply));
        } else if ((r = sd_bus_message_read(reply, "t", &t->bytes)) < 0 && t->status == 0)
                t->status = ctl_bus_fail(r, t->name);
        transfer_maybe_done(t, sd_bus_get_event(sd_bus_message_get_bus(reply)));
        return 0;
}

static int print_bytes(uint64_t bytes) {
        if (arg.json)
                printf("{\"bytes\":%" PRIu64 "}\n", bytes);
        else
                printf("%" PRIu64 "\n", bytes);
        return 0;
}

static int call_file_direct(sd_bus *bus, const char *name, const char *method, const char *guest_path, int fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t bytes;
        int r;

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
        return print_bytes(bytes);
}

static int call_file(const char *name, const char *method, const char *guest_path, int file_fd) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *dest = NULL;
        Transfer t = { .name = name, .reading = streq(method, "ReadFile"), .file_fd = file_fd, .pipe_fd = -1 };
        struct stat st;
        int p[2], r;

        /* A local reader or a supervisor that goes away is an error to report, not a silent death. */
        (void) signal(SIGPIPE, SIG_IGN);
        if (fstat(file_fd, &st) < 0)
                return ctl_bus_fail(-errno, "cannot look at the local file");
        r = ctl_bus_open_vm(name, &bus);
        if (r < 0)
                return -r;
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
                /* A kind the supervisor takes (it checks that a socket is an AF_UNIX stream one). */
                return call_file_direct(bus, name, method, guest_path, file_fd);

        if (asprintf(&dest, VM_BUS_PREFIX "%s", name) < 0)
                return ctl_bus_fail(-ENOMEM, name);
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r < 0)
                return ctl_bus_fail(r, method);
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
                return ctl_bus_fail(-errno, "cannot make a pipe");
        /* Fewer wake-ups on both sides for large files; the default size where refused. */
        (void) fcntl(p[0], F_SETPIPE_SZ, TRANSFER_PIPE_SIZE);
        /* The supervisor gets the other end; ours stays here. Writing, ours blocks: the
         * supervisor reads as fast as the guest takes it, and closes its end on failure. */
        t.pipe_fd = t.reading ? p[0] : p[1];
        if (!t.reading && fcntl(p[1], F_SETFL, 0) < 0) {
                r = -errno;
                safe_close(p[0]);
                safe_close(p[1]);
                return ctl_bus_fail(r, "cannot set up the pipe");
        }
        r = sd_bus_message_new_method_call(bus, &m, ctl_dest(bus, dest), VM_OBJECT, AGENT_IFACE, method);
        if (r >= 0)
                r = t.reading ? sd_bus_message_append(m, "stth", guest_path, arg.offset, arg.length, p[1])
                              : sd_bus_message_append(m, "shb", guest_path, p[0], (int) arg.append);
        safe_close(t.reading ? p[1] : p[0]); /* the message holds its own copy */
        if (r >= 0)
                r = sd_event_add_io(event, &t.io, t.pipe_fd, t.reading ? EPOLLIN : EPOLLOUT, on_pipe, &t);
        /* Large files through a slow guest take long: the supervisor bounds each agent call. */
        if (r >= 0)
                r = sd_bus_call_async(bus, NULL, m, on_file_reply, &t, UINT64_MAX);
        /* Once sent, the message's copy goes: only the supervisor's is left. */
        m = sd_bus_message_unref(m);
        if (r >= 0)
                r = sd_event_loop(event);
        sd_event_source_disable_unref(t.io);
        safe_close(t.pipe_fd);
        if (r < 0)
                return ctl_bus_fail(r, name);
        if (t.status > 0)
                return t.status;
        return print_bytes(t.bytes);
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
