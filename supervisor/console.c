/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"
#include "log.h"

struct Console {
        sd_event *event;
        char *name;

        char *log_path, *log_old_path;
        uint64_t log_max, log_size;
        int log_fd;
        bool log_failed;        /* the log is closed after an error; reported once per run */
        uint64_t log_retry_at;  /* CLOCK_MONOTONIC: when to try the log again */
        uint64_t log_lost;      /* bytes of output not logged since it failed */

        int serial_fd;
        sd_event_source *serial_source;
        char to_guest[CONSOLE_INPUT_BUFFER];
        size_t to_guest_len;

        int session_fd;
        sd_event_source *session_source;
        char *out;
        size_t out_len;
};

int console_new(sd_event *event, const char *name, const char *log_path, uint64_t log_max, Console **ret) {
        _cleanup_(console_freep) Console *c = NULL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->log_fd = c->serial_fd = c->session_fd = -EBADF;
        c->name = strdup(name);
        if (!c->name)
                return -ENOMEM;
        if (log_path && log_max > 0) {
                c->log_path = strdup(log_path);
                if (!c->log_path || asprintf(&c->log_old_path, "%s.1", log_path) < 0)
                        return -ENOMEM;
                c->log_max = log_max;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static void session_close(Console *c) {
        c->session_source = sd_event_source_disable_unref(c->session_source);
        c->session_fd = safe_close(c->session_fd);
        free(c->out);
        c->out = NULL;
        c->out_len = 0;
        c->to_guest_len = 0;
}

Console *console_free(Console *c) {
        if (!c)
                return NULL;
        console_detach(c);
        free(c->log_path);
        free(c->log_old_path);
        free(c->name);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

/* ---- log ---- */

static int log_open(Console *c) {
        struct stat st;

        c->log_fd = open(c->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (c->log_fd < 0)
                return -errno;
        if (fstat(c->log_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                c->log_fd = safe_close(c->log_fd);
                return -EINVAL;
        }
        c->log_size = (uint64_t) st.st_size;
        return 0;
}

static void log_fail(Console *c, int r) {
        c->log_fd = safe_close(c->log_fd);
        if (!c->log_failed)
                log_warning_errno(r, "VM %s: cannot write the console log %s, output is not logged until it can be "
                                  "written again: %m", c->name, c->log_path);
        c->log_failed = true;
        c->log_retry_at = now_usec(CLOCK_MONOTONIC) + CONSOLE_LOG_RETRY_USEC;
}

/* After a failure (a full filesystem, usually): reopens the log when it is time to try, and
 * says in it what is missing. */
static void log_retry(Console *c) {
        char note[128];
        int r, k;

        if (now_usec(CLOCK_MONOTONIC) < c->log_retry_at)
                return;
        r = log_open(c);
        if (r >= 0) {
                k = snprintf(note, sizeof note, "\n[vmsupd: %" PRIu64 " bytes of console output not logged]\n",
                             c->log_lost);
                if (write(c->log_fd, note, (size_t) k) != k)
                        r = -errno ?: -EIO;
        }
        if (r < 0) {
                c->log_fd = safe_close(c->log_fd);
                c->log_retry_at = now_usec(CLOCK_MONOTONIC) + CONSOLE_LOG_RETRY_USEC;
                return;
        }
        c->log_size += (uint64_t) k;
        log_info("VM %s: the console log %s can be written again; %" PRIu64 " bytes were not logged", c->name,
                 c->log_path, c->log_lost);
        c->log_failed = false;
        c->log_lost = 0;
}

static void log_append(Console *c, const char *p, size_t n) {
        if (c->log_failed && c->log_path) {
                log_retry(c);
                if (c->log_fd < 0) {
                        c->log_lost += n;
                        return;
                }
        }
        while (n > 0 && c->log_fd >= 0) {
                size_t room, m;
                ssize_t k;

                if (c->log_size >= c->log_max) {
                        /* Full: it becomes the old log and a new one begins. */
                        c->log_fd = safe_close(c->log_fd);
                        if (rename(c->log_path, c->log_old_path) < 0 && errno != ENOENT)
                                return log_fail(c, -errno);
                        int r = log_open(c);
                        if (r < 0)
                                return log_fail(c, r);
                        continue;
                }
                room = (size_t) (c->log_max - c->log_size);
                m = n < room ? n : room;
                k = write(c->log_fd, p, m);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        log_fail(c, -errno);
                        c->log_lost += n;
                        return;
                }
                c->log_size += (uint64_t) k;
                p += k;
                n -= (size_t) k;
        }
}

/* ---- session ---- */

static int session_update_events(Console *c) {
        uint32_t ev = 0;

        if (!c->session_source)
                return 0;
        if (c->to_guest_len == 0)
                ev |= EPOLLIN;
        if (c->out_len > 0)
                ev |= EPOLLOUT;
        return sd_event_source_set_io_events(c->session_source, ev);
}

static int serial_update_events(Console *c) {
        if (!c->serial_source)
                return 0;
        return sd_event_source_set_io_events(c->serial_source, EPOLLIN | (c->to_guest_len > 0 ? EPOLLOUT : 0));
}

/* Writes what the session accepts; closes it on error. */
static void session_flush(Console *c) {
        while (c->out_len > 0 && c->session_fd >= 0) {
                ssize_t k = send(c->session_fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        log_debug_errno(errno, "VM %s: console session ended: %m", c->name);
                        session_close(c);
                        return;
                }
                memmove(c->out, c->out + k, c->out_len - (size_t) k);
                c->out_len -= (size_t) k;
        }
        if (session_update_events(c) < 0)
                session_close(c);
}

static void session_queue(Console *c, const char *p, size_t n) {
        if (c->session_fd < 0)
                return;
        if (n > CONSOLE_SESSION_BUFFER - c->out_len) {
                log_info("VM %s: the console session does not keep up with the guest, closing it", c->name);
                session_close(c);
                return;
        }
        if (!c->out) {
                c->out = malloc(CONSOLE_SESSION_BUFFER);
                if (!c->out) {
                        session_close(c);
                        return;
                }
        }
        memcpy(c->out + c->out_len, p, n);
        c->out_len += n;
        session_flush(c);
}

/* Writes queued input to the guest. */
static void serial_write(Console *c) {
        while (c->to_guest_len > 0 && c->serial_fd >= 0) {
                ssize_t k = send(c->serial_fd, c->to_guest, c->to_guest_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                c->to_guest_len = 0; /* the stream's end is seen by the reader */
                        break;
                }
                memmove(c->to_guest, c->to_guest + k, c->to_guest_len - (size_t) k);
                c->to_guest_len -= (size_t) k;
        }
        (void) serial_update_events(c);
        if (session_update_events(c) < 0)
                session_close(c);
}

static int on_session(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Console *c = userdata;

        if (revents & EPOLLOUT)
                session_flush(c);
        if (c->session_fd < 0)
                return 0;
        if ((revents & (EPOLLHUP | EPOLLERR)) && c->to_guest_len > 0) {
                /* The caller is gone while its input waits for the guest: what it has not
                 * read and what the guest has not taken go with it (epoll reports a hang-up
                 * whatever the mask: waiting here would spin). */
                session_close(c);
                return 0;
        }
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->to_guest_len == 0) {
                ssize_t k = read(c->session_fd, c->to_guest, sizeof c->to_guest);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (k <= 0) {
                        session_close(c); /* the caller closed its end */
                        return 0;
                }
                c->to_guest_len = (size_t) k;
                serial_write(c);
        }
        return 0;
}

int console_open_session(Console *c, bool force, int *ret_fd) {
        int pair[2], r;

        if (c->serial_fd < 0)
                return -ENOTCONN;
        if (c->session_fd >= 0) {
                if (!force)
                        return -EBUSY;
                log_info("VM %s: console session taken over", c->name);
                session_close(c);
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        if (fcntl(pair[0], F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(c->event, &c->session_source, pair[0], EPOLLIN, on_session, c);
        if (r < 0)
                goto fail;
        c->session_fd = pair[0];
        *ret_fd = pair[1];
        return 0;
fail:
        safe_close(pair[0]);
        safe_close(pair[1]);
        return r;
}

/* ---- serial stream ---- */

static int on_serial(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Console *c = userdata;
        char buf[16384];

        if (revents & EPOLLOUT)
                serial_write(c);
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        /* A bounded amount per wakeup: a flooding guest shares the loop with everyone. */
        for (unsigned i = 0; i < 4; i++) {
                ssize_t k = read(c->serial_fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        break;
                if (k <= 0) {
                        console_detach(c); /* QEMU closed the stream (it exited) */
                        return 0;
                }
                log_append(c, buf, (size_t) k);
                session_queue(c, buf, (size_t) k);
        }
        return 0;
}

int console_attach(Console *c, int fd) {
        _cleanup_close_ int owned = fd;
        int r;

        console_detach(c);
        if (fcntl(owned, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(c->event, &c->serial_source, owned, EPOLLIN, on_serial, c);
        if (r < 0)
                return r;
        c->serial_fd = TAKE_FD(owned);
        c->log_failed = false;
        c->log_lost = 0;
        if (c->log_path) {
                r = log_open(c);
                if (r < 0)
                        log_fail(c, r);
        }
        return 0;
}

void console_detach(Console *c) {
        session_close(c);
        c->serial_source = sd_event_source_disable_unref(c->serial_source);
        c->serial_fd = safe_close(c->serial_fd);
        c->log_fd = safe_close(c->log_fd);
}

bool console_is_attached(Console *c) {
        return c && c->serial_fd >= 0;
}
