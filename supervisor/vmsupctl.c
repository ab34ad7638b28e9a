/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: a small client for what busctl cannot do: follow a VM's signals, and
 * move files through the guest agent with passed file descriptors (pipes: the
 * supervisor takes nothing else). */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

static const char *arg_bus = NULL; /* NULL: $VMSUP_BUS or the system bus */
static uint64_t arg_count = 0;
static uint64_t arg_timeout_sec = 0;
static uint64_t arg_offset = 0, arg_length = 0;
static bool arg_append = false;

static void help(void) {
        printf("Usage: vmsupctl [--bus system|session|ADDRESS] COMMAND ...\n\n"
               "  events NAME [--count N] [--timeout SEC]\n"
               "        print StateChanged and Event signals of VM NAME as they come\n"
               "  read-file NAME GUEST_PATH LOCAL_FILE [--offset N] [--length N]\n"
               "        copy a guest file through the agent (Agent1.ReadFile)\n"
               "  write-file NAME LOCAL_FILE GUEST_PATH [--append]\n"
               "        copy a local file into the guest (Agent1.WriteFile)\n");
}

static int bus_open(sd_bus **ret) {
        const char *b = arg_bus ?: getenv("VMSUP_BUS") ?: "system";
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (streq(b, "system"))
                r = sd_bus_open_system(&bus);
        else if (streq(b, "session"))
                r = sd_bus_open_user(&bus);
        else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, b);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        }
        if (r < 0) {
                fprintf(stderr, "vmsupctl: cannot connect to the %s bus: %s\n", b, strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

static uint64_t n_seen = 0;

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *member = sd_bus_message_get_member(m);
        int r;

        if (streq(member, "StateChanged")) {
                const char *state, *reason;
                r = sd_bus_message_read(m, "ss", &state, &reason);
                if (r < 0)
                        return r;
                printf("StateChanged %s %s\n", state, reason);
        } else if (streq(member, "Event")) {
                const char *name, *data;
                uint64_t ts;
                r = sd_bus_message_read(m, "sst", &name, &data, &ts);
                if (r < 0)
                        return r;
                printf("Event %s %s %" PRIu64 "\n", name, data, ts);
        } else
                return 0;
        fflush(stdout);
        if (arg_count > 0 && ++n_seen >= arg_count)
                sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), 0);
        return 0;
}

static int cmd_events(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_free_ char *dest = NULL;
        int r;

        if (asprintf(&dest, "org.vmsup.VM.%s", name) < 0)
                return -ENOMEM;
        r = bus_open(&bus);
        if (r < 0)
                return r;
        r = sd_event_default(&event);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, 0);
        if (r < 0)
                return r;
        /* Nothing more will come once the bus is gone. */
        (void) sd_bus_set_exit_on_disconnect(bus, true);
        /* Synchronous: the match is in place before "READY" is printed, so a caller can
         * wait for that line and then act. */
        r = sd_bus_match_signal(bus, NULL, dest, "/org/vmsup/VM", "org.vmsup.VM1", NULL, on_signal, NULL);
        if (r < 0) {
                fprintf(stderr, "vmsupctl: cannot subscribe: %s\n", strerror(-r));
                return r;
        }
        if (arg_timeout_sec > 0)
                (void) sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg_timeout_sec * USEC_PER_SEC, 0,
                                                  NULL, INT_TO_PTR(0));
        printf("READY\n");
        fflush(stdout);
        return sd_event_loop(event);
}

/* A transfer: the supervisor takes only pipes, FIFOs and AF_UNIX stream sockets, so any
 * other local file is copied through a pipe while the call runs. */
/* The most an unprivileged process may ask for (/proc/sys/fs/pipe-max-size's default). */
#define TRANSFER_PIPE_SIZE (1024 * 1024)

typedef struct Transfer {
        bool reading;     /* ReadFile: pipe → file */
        int file_fd;
        int pipe_fd;      /* our end */
        bool pipe_done;   /* EOF seen (ReadFile) or our end closed (WriteFile) */
        bool replied;
        int error;
        uint64_t bytes, copied;
        sd_event_source *io;
} Transfer;

static void transfer_maybe_done(Transfer *t, sd_event *event) {
        /* ReadFile: the reply says how much was sent; what is in the pipe still comes. */
        if (t->replied && (t->error < 0 || t->pipe_done || (t->reading && t->copied >= t->bytes)))
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
                if (k > 0) {
                        int r = write_all(t->file_fd, buf, (size_t) k);
                        if (r < 0) {
                                fprintf(stderr, "vmsupctl: cannot write the local file: %s\n", strerror(-r));
                                t->error = r;
                        }
                        t->copied += (uint64_t) k;
                }
                if (k <= 0 || t->error < 0) {
                        t->pipe_done = true;
                        t->io = sd_event_source_disable_unref(t->io);
                }
        } else {
                k = read(t->file_fd, buf, sizeof buf);
                if (k < 0) {
                        fprintf(stderr, "vmsupctl: cannot read the local file: %m\n");
                        t->error = -errno;
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
                fprintf(stderr, "vmsupctl: %s: %s\n", e->name, e->message ?: "");
                t->error = -EIO;
        } else if ((r = sd_bus_message_read(reply, "t", &t->bytes)) < 0)
                t->error = r;
        transfer_maybe_done(t, sd_bus_get_event(sd_bus_message_get_bus(reply)));
        return 0;
}

static int call_file_direct(sd_bus *bus, const char *dest, const char *method, const char *guest_path, int fd) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        uint64_t bytes;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, dest, "/org/vmsup/VM", "org.vmsup.Agent1", method);
        if (r < 0)
                return r;
        if (streq(method, "ReadFile"))
                r = sd_bus_message_append(m, "stth", guest_path, arg_offset, arg_length, fd);
        else
                r = sd_bus_message_append(m, "shb", guest_path, fd, arg_append);
        if (r < 0)
                return r;
        /* Large files through a slow guest take long: no client-side timeout. */
        r = sd_bus_call(bus, m, UINT64_MAX, &error, &reply);
        if (r < 0) {
                fprintf(stderr, "vmsupctl: %s: %s\n", error.name ?: "error", error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "t", &bytes);
        if (r < 0)
                return r;
        printf("%" PRIu64 "\n", bytes);
        return 0;
}

static int call_file(const char *name, const char *method, const char *guest_path, int file_fd) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *dest = NULL;
        Transfer t = { .reading = streq(method, "ReadFile"), .file_fd = file_fd, .pipe_fd = -1 };
        struct stat st;
        int p[2], r;

        if (asprintf(&dest, "org.vmsup.VM.%s", name) < 0)
                return -ENOMEM;
        r = bus_open(&bus);
        if (r < 0)
                return r;
        if (fstat(file_fd, &st) < 0)
                return -errno;
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
                /* A kind the supervisor takes: handed over as it is. */
                return call_file_direct(bus, dest, method, guest_path, file_fd);
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r < 0)
                return r;
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        /* Fewer wake-ups on both sides for large files; the default size where refused. */
        (void) fcntl(p[0], F_SETPIPE_SZ, TRANSFER_PIPE_SIZE);
        /* The supervisor gets the other end; ours stays here. Writing, ours blocks: the
         * supervisor reads as fast as the guest takes it, and closes its end on failure. */
        t.pipe_fd = t.reading ? p[0] : p[1];
        if (!t.reading && fcntl(p[1], F_SETFL, 0) < 0) {
                safe_close(p[0]);
                safe_close(p[1]);
                return -errno;
        }
        r = sd_bus_message_new_method_call(bus, &m, dest, "/org/vmsup/VM", "org.vmsup.Agent1", method);
        if (r >= 0)
                r = t.reading ? sd_bus_message_append(m, "stth", guest_path, arg_offset, arg_length, p[1])
                              : sd_bus_message_append(m, "shb", guest_path, p[0], arg_append);
        safe_close(t.reading ? p[1] : p[0]); /* the message holds its own copy */
        if (r >= 0)
                r = sd_event_add_io(event, &t.io, t.pipe_fd, t.reading ? EPOLLIN : EPOLLOUT, on_pipe, &t);
        /* Large files through a slow guest take long: no client-side timeout. */
        if (r >= 0)
                r = sd_bus_call_async(bus, NULL, m, on_file_reply, &t, UINT64_MAX);
        /* Once sent, the message's copy goes: only the supervisor's is left. */
        m = sd_bus_message_unref(m);
        if (r >= 0)
                r = sd_event_loop(event);
        sd_event_source_disable_unref(t.io);
        safe_close(t.pipe_fd);
        if (r < 0) {
                fprintf(stderr, "vmsupctl: %s: %s\n", method, strerror(-r));
                return r;
        }
        if (t.error < 0)
                return t.error;
        printf("%" PRIu64 "\n", t.bytes);
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_BUS = 0x100, ARG_COUNT, ARG_TIMEOUT, ARG_OFFSET, ARG_LENGTH, ARG_APPEND };
        static const struct option options[] = {
                { "bus", required_argument, NULL, ARG_BUS },
                { "count", required_argument, NULL, ARG_COUNT },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "offset", required_argument, NULL, ARG_OFFSET },
                { "length", required_argument, NULL, ARG_LENGTH },
                { "append", no_argument, NULL, ARG_APPEND },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c, r;

        /* A local reader that goes away is an error to report, not a silent death. */
        (void) signal(SIGPIPE, SIG_IGN);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_BUS:
                        arg_bus = optarg;
                        break;
                case ARG_COUNT:
                case ARG_TIMEOUT:
                case ARG_OFFSET:
                case ARG_LENGTH: {
                        uint64_t v;
                        if (safe_atou64(optarg, &v) < 0) {
                                fprintf(stderr, "vmsupctl: not a number: %s\n", optarg);
                                return 2;
                        }
                        if (c == ARG_COUNT)
                                arg_count = v;
                        else if (c == ARG_TIMEOUT)
                                arg_timeout_sec = v;
                        else if (c == ARG_OFFSET)
                                arg_offset = v;
                        else
                                arg_length = v;
                        break;
                }
                case ARG_APPEND:
                        arg_append = true;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        argc -= optind;
        argv += optind;
        if (argc >= 2 && streq(argv[0], "events") && argc == 2)
                r = cmd_events(argv[1]);
        else if (argc == 4 && streq(argv[0], "read-file")) {
                _cleanup_close_ int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0) {
                        fprintf(stderr, "vmsupctl: cannot open %s: %m\n", argv[3]);
                        return 1;
                }
                r = call_file(argv[1], "ReadFile", argv[2], fd);
        } else if (argc == 4 && streq(argv[0], "write-file")) {
                _cleanup_close_ int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        fprintf(stderr, "vmsupctl: cannot open %s: %m\n", argv[2]);
                        return 1;
                }
                r = call_file(argv[1], "WriteFile", argv[3], fd);
        } else {
                help();
                return 2;
        }
        return r < 0 ? 1 : 0;
}
