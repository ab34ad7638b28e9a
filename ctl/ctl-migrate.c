/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl migrate / migrate-in: a live migration over the standard input and output of a
 * command (ssh, socat, ...), through org.vmsup.Migration1. */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define MIGRATION_IFACE "org.vmsup.Migration1"
/* The migration call itself has no bound of its own here: the supervisor bounds it by
 * progress (a stalled migration is cancelled). */
#define MIGRATE_CALL_TIMEOUT_USEC (7ULL * 24ULL * 3600ULL * 1000000ULL)
#define PROGRESS_INTERVAL_USEC 500000ULL
/* After the call, COMMAND gets this long to end on its own before SIGTERM. */
#define COMMAND_GRACE_MSEC 10000

static bool write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* ---- two streams over one: frames of (channel, length, bytes) ----
 *
 * With --local-disk both ends carry the RAM stream (channel 0) and the disk stream (channel 1)
 * over COMMAND's one byte stream: a frame is a 1-byte channel, a 4-byte big-endian length and
 * that many bytes; length 0 says the channel's sender is done. Each direction is one process
 * with blocking writes (the streams' readers never wait for each other). */

#define FRAME_MAX 65536U

static bool read_full(int fd, uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = read(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* Local streams → frames on out. */
_noreturn_ static void mux(int local[2], int out) {
        static uint8_t buf[5 + FRAME_MAX];
        bool open[2] = { true, true };

        (void) signal(SIGPIPE, SIG_IGN);
        while (open[0] || open[1]) {
                struct pollfd p[2] = {
                        { .fd = open[0] ? local[0] : -1, .events = POLLIN },
                        { .fd = open[1] ? local[1] : -1, .events = POLLIN },
                };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                for (unsigned c = 0; c < 2; c++) {
                        ssize_t k;
                        if (!p[c].revents)
                                continue;
                        k = read(local[c], buf + 5, FRAME_MAX);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                k = 0;
                                open[c] = false;
                        }
                        buf[0] = (uint8_t) c;
                        buf[1] = (uint8_t) (k >> 24);
                        buf[2] = (uint8_t) (k >> 16);
                        buf[3] = (uint8_t) (k >> 8);
                        buf[4] = (uint8_t) k;
                        if (!write_all(out, (const char *) buf, 5 + (size_t) k))
                                _exit(1);
                }
        }
        (void) shutdown(out, SHUT_WR);
        _exit(0);
}

/* Frames from in → the local streams. */
_noreturn_ static void demux(int in, int local[2]) {
        static uint8_t buf[FRAME_MAX];
        uint8_t h[5];

        (void) signal(SIGPIPE, SIG_IGN);
        while (read_full(in, h, sizeof h)) {
                uint32_t len = (uint32_t) h[1] << 24 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 8 | h[4];
                if (h[0] > 1 || len > FRAME_MAX)
                        _exit(1); /* not our framing */
                if (len == 0) {
                        (void) shutdown(local[h[0]], SHUT_WR);
                        continue;
                }
                if (!read_full(in, buf, len))
                        break;
                /* A stream whose reader went away: its bytes are dropped, the other goes on. */
                (void) write_all(local[h[0]], (const char *) buf, len);
        }
        (void) shutdown(local[0], SHUT_WR);
        (void) shutdown(local[1], SHUT_WR);
        _exit(0);
}

/* Two socket pairs for the call (ret_ram, ret_disk: the ends passed to the supervisor), and
 * the two pumps between their other ends and in / out. */
static int start_pumps(int in, int out, int *ret_ram, int *ret_disk, pid_t pids[2]) {
        int ram[2], disk[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ram) < 0)
                return -errno;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, disk) < 0) {
                close(ram[0]);
                close(ram[1]);
                return -errno;
        }
        int local[2] = { ram[1], disk[1] };
        /* The pumps hold only their own ends: the supervisor's closing is their EOF. */
        pids[0] = fork();
        if (pids[0] == 0) {
                close(ram[0]);
                close(disk[0]);
                mux(local, out);
        }
        pids[1] = pids[0] < 0 ? -1 : fork();
        if (pids[1] == 0) {
                close(ram[0]);
                close(disk[0]);
                demux(in, local);
        }
        close(ram[1]);
        close(disk[1]);
        if (pids[0] < 0 || pids[1] < 0) {
                close(ram[0]);
                close(disk[0]);
                return -EAGAIN;
        }
        *ret_ram = ram[0];
        *ret_disk = disk[0];
        return 0;
}

typedef struct Call {
        bool done;
        int r;
        sd_bus_error error;
} Call;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Call *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        c->done = true;
        if (e) {
                c->r = -sd_bus_message_get_errno(m) ?: -EIO;
                (void) sd_bus_error_copy(&c->error, e);
        }
        return 0;
}

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static uint64_t status_u64(json_t *j, const char *key) {
        json_t *v = json_object_get(j, key);
        return json_is_integer(v) ? (uint64_t) json_integer_value(v) : 0;
}

static int get_status(sd_bus *bus, const char *name, json_t **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = ctl_call(bus, name, MIGRATION_IFACE, "GetMigrationStatus", 0, &reply, NULL);
        if (r > 0)
                return r;
        r = ctl_json_from_message(reply, ret);
        return r < 0 ? ctl_bus_fail(r, name) : 0;
}

/* One progress line on the terminal (stderr): bytes, rate and what remains. */
static void progress_line(json_t *s) {
        double mbps = json_number_value(json_object_get(s, "throughput-mbps"));

        fprintf(stderr, "\r%-10s %8.1f MiB sent, %8.1f MiB remaining of %8.1f MiB, %8.1f Mbit/s  ",
                json_string_value(json_object_get(s, "status")) ?: "?",
                (double) status_u64(s, "transferred-bytes") / 1048576.0,
                (double) status_u64(s, "remaining-bytes") / 1048576.0,
                (double) status_u64(s, "total-bytes") / 1048576.0, mbps);
        fflush(stderr);
}

/* Calls METHOD(fd, options) and runs the loop until it is answered; on a terminal, a
 * progress line from GetMigrationStatus. Returns 0 or an exit status. */
static int migrate_call(sd_bus *bus, const char *name, const char *method, int fd, int disk_fd, bool progress) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *dest = NULL;
        Call call = { .error = SD_BUS_ERROR_NULL };
        uint64_t next = mono_usec() + PROGRESS_INTERVAL_USEC;
        bool printed = false;
        int r;

        if (asprintf(&dest, VM_BUS_PREFIX "%s", name) < 0)
                return ctl_bus_fail(-ENOMEM, name);
        r = sd_bus_message_new_method_call(bus, &m, dest, VM_OBJECT, MIGRATION_IFACE, method);
        if (r >= 0)
                r = sd_bus_message_append(m, "h", fd);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && arg.have_max_bandwidth)
                r = sd_bus_message_append(m, "{sv}", "max-bandwidth", "t", arg.max_bandwidth);
        if (r >= 0 && arg.have_downtime_limit)
                r = sd_bus_message_append(m, "{sv}", "downtime-limit-ms", "t", arg.downtime_limit_ms);
        if (r >= 0 && arg.auto_converge)
                r = sd_bus_message_append(m, "{sv}", "auto-converge", "b", 1);
        if (r >= 0 && disk_fd >= 0)
                r = sd_bus_message_append(m, "{sv}", "disk-fd", "h", disk_fd);
        if (r >= 0 && arg.have_timeout) /* checked by the verbs */
                r = sd_bus_message_append(m, "{sv}", "timeout", "u", (uint32_t) arg.timeout_sec);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_bus_fail(r, name);
        r = sd_bus_call_async(bus, &slot, m, on_reply, &call, MIGRATE_CALL_TIMEOUT_USEC);
        if (r < 0)
                return ctl_bus_fail(r, name);
        while (!call.done) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return ctl_bus_fail(r, name);
                if (r > 0)
                        continue;
                if (progress && mono_usec() >= next) {
                        _cleanup_(json_decrefp) json_t *s = NULL;
                        /* A nested call: the pending reply stays queued for the loop. */
                        if (get_status(bus, name, &s) == 0) {
                                progress_line(s);
                                printed = true;
                        }
                        next = mono_usec() + PROGRESS_INTERVAL_USEC;
                        continue;
                }
                r = sd_bus_wait(bus, progress ? PROGRESS_INTERVAL_USEC : UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        return ctl_bus_fail(r, name);
        }
        if (printed)
                fputc('\n', stderr);
        if (call.r < 0) {
                r = ctl_error_status(name, &call.error, call.r);
                sd_bus_error_free(&call.error);
                return r;
        }
        return 0;
}

static int print_final_status(sd_bus *bus, const char *name) {
        _cleanup_(json_decrefp) json_t *s = NULL;
        int r;

        r = get_status(bus, name, &s);
        if (r > 0)
                return r;
        return ctl_print_json(s, false) < 0 ? CTL_EXIT_FAILURE : 0;
}

/* Waits for pid; after timeout_msec (-1: forever) SIGTERM, then SIGKILL. */
static void reap(pid_t pid, int timeout_msec) {
        uint64_t until = timeout_msec < 0 ? UINT64_MAX : mono_usec() + (uint64_t) timeout_msec * 1000ULL;
        int status;

        for (;;) {
                pid_t k = waitpid(pid, &status, WNOHANG);
                if (k == pid || (k < 0 && errno != EINTR))
                        return;
                if (mono_usec() >= until) {
                        (void) kill(pid, SIGTERM);
                        (void) usleep(200000);
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, &status, 0);
                        return;
                }
                (void) usleep(20000);
        }
}

int verb_migrate(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int sp[2], r;
        pid_t pid;

        if (arg.have_timeout && arg.timeout_sec > UINT32_MAX) {
                fprintf(stderr, "vmsupctl: --timeout is too large\n");
                return CTL_EXIT_USAGE;
        }
        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return ctl_bus_fail(-errno, "socketpair");
        pid = fork();
        if (pid < 0)
                return ctl_bus_fail(-errno, "fork");
        if (pid == 0) {
                /* COMMAND's standard input and output are the stream (framed with --local-disk). */
                if (dup2(sp[1], STDIN_FILENO) < 0 || dup2(sp[1], STDOUT_FILENO) < 0)
                        _exit(127);
                (void) signal(SIGPIPE, SIG_DFL);
                execvp(args[1], args + 1);
                fprintf(stderr, "vmsupctl: cannot run %s: %m\n", args[1]);
                _exit(127);
        }
        close(sp[1]);
        if (arg.local_disk) {
                int ram = -1, disk = -1;
                pid_t pumps[2] = { -1, -1 };

                r = start_pumps(sp[0], sp[0], &ram, &disk, pumps);
                close(sp[0]);
                if (r < 0) {
                        reap(pid, 0);
                        return ctl_bus_fail(r, "the stream pumps");
                }
                r = migrate_call(bus, args[0], "MigrateOut", ram, disk, isatty(STDERR_FILENO) && !arg.json);
                close(ram);
                close(disk);
                reap(pumps[0], COMMAND_GRACE_MSEC);
                reap(pumps[1], COMMAND_GRACE_MSEC);
                reap(pid, COMMAND_GRACE_MSEC);
        } else {
                r = migrate_call(bus, args[0], "MigrateOut", sp[0], -1, isatty(STDERR_FILENO) && !arg.json);
                /* Our end closes: COMMAND reads the end of its input and finishes. */
                close(sp[0]);
                reap(pid, COMMAND_GRACE_MSEC);
        }
        if (r == 0 && arg.json)
                r = print_final_status(bus, args[0]);
        return r;
}

static bool same_socket(int a, int b) {
        struct stat sa, sb;

        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && S_ISSOCK(sa.st_mode) && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
}

/* Copies stdin into s and s into stdout until both directions ended. */
_noreturn_ static void bridge(int s) {
        char buf[65536];
        bool in_open = true, out_open = true;

        (void) signal(SIGPIPE, SIG_IGN);
        while (in_open || out_open) {
                struct pollfd p[2] = {
                        { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = out_open ? s : -1, .events = POLLIN },
                };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                if (p[0].revents) {
                        ssize_t k = read(STDIN_FILENO, buf, sizeof buf);
                        if (k <= 0 || !write_all(s, buf, (size_t) k)) {
                                if (k < 0 && errno == EINTR)
                                        continue;
                                in_open = false;
                                (void) shutdown(s, SHUT_WR);
                        }
                }
                if (p[1].revents) {
                        ssize_t k = read(s, buf, sizeof buf);
                        if (k <= 0 || !write_all(STDOUT_FILENO, buf, (size_t) k)) {
                                if (k < 0 && errno == EINTR)
                                        continue;
                                /* The supervisor and QEMU are done with the stream. */
                                _exit(0);
                        }
                }
        }
        _exit(0);
}

int verb_migrate_in(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int sp[2], r;
        pid_t pid;

        if (arg.have_timeout && arg.timeout_sec > UINT32_MAX) {
                fprintf(stderr, "vmsupctl: --timeout is too large\n");
                return CTL_EXIT_USAGE;
        }
        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        if (arg.local_disk) {
                int ram = -1, disk = -1;
                pid_t pumps[2] = { -1, -1 };

                r = start_pumps(STDIN_FILENO, STDOUT_FILENO, &ram, &disk, pumps);
                if (r < 0)
                        return ctl_bus_fail(r, "the stream pumps");
                r = migrate_call(bus, args[0], "MigrateIn", ram, disk, false);
                close(ram);
                close(disk);
                reap(pumps[0], COMMAND_GRACE_MSEC);
                reap(pumps[1], COMMAND_GRACE_MSEC);
                if (r == 0 && arg.json)
                        r = print_final_status(bus, args[0]);
                return r;
        }
        if (same_socket(STDIN_FILENO, STDOUT_FILENO)) {
                /* One socket both ways (socat EXEC, inetd style): it is the stream. */
                r = migrate_call(bus, args[0], "MigrateIn", STDIN_FILENO, -1, false);
                if (r == 0 && arg.json)
                        r = print_final_status(bus, args[0]);
                return r;
        }
        /* Two ends (ssh's pipes): a socket pair, bridged to them by a child. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return ctl_bus_fail(-errno, "socketpair");
        pid = fork();
        if (pid < 0)
                return ctl_bus_fail(-errno, "fork");
        if (pid == 0) {
                close(sp[0]);
                bridge(sp[1]);
        }
        close(sp[1]);
        r = migrate_call(bus, args[0], "MigrateIn", sp[0], -1, false);
        close(sp[0]);
        reap(pid, COMMAND_GRACE_MSEC);
        if (r == 0 && arg.json)
                r = print_final_status(bus, args[0]);
        return r;
}
