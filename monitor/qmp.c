/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "json-wire.h"
#include "linebuf.h"
#include "list.h"
#include "log.h"
#include "macro.h"
#include "qmp.h"

/* Replies and events are usually well below 1 KiB: start small, double up to a
 * maximal line plus its '\n', and give a large buffer back once it is drained so
 * that one big reply does not pin megabytes for the life of the VM. */
#define QMP_INPUT_INITIAL (16U * 1024U)
#define QMP_INPUT_KEEP (256U * 1024U)
#define QMP_INPUT_LIMIT ((size_t) QMP_LINE_MAX + 1U)
#define QMP_OUTPUT_INITIAL (4U * 1024U)
#define QMP_OUTPUT_KEEP (64U * 1024U)
/* QAPI names: letters, digits, '-', '_' and '.' (downstream "__org.example_cmd"). */
/* Request ids are random below 2^53, so that every JSON implementation keeps them
 * exact and nothing that reaches QEMU can name another request's id. */
#define QMP_ID_MASK ((UINT64_C(1) << 53) - 1)
#define QMP_ID_POOL 32U
/* Requests QEMU still owes a reply after they timed out or were cancelled, at most;
 * beyond, the oldest is forgotten (and the order of replies no longer fully known). */
#define QMP_ORPHANS_MAX (4U * QMP_PENDING_MAX)

#define QMP_STRLEN(s) (sizeof(s) - 1)

typedef enum QmpState {
        QMP_STATE_GREETING,    /* waiting for {"QMP": ...}; nothing is written yet */
        QMP_STATE_NEGOTIATING, /* only the qmp_capabilities line may be written */
        QMP_STATE_RESYNC,      /* adopted: only the resync request may be written, and every
                                * line before its reply is dropped */
        QMP_STATE_READY,
        QMP_STATE_DISCONNECTED,
} QmpState;

typedef struct QmpRequest QmpRequest;
struct QmpRequest {
        QmpClient *client;
        uint64_t id;
        qmp_reply_cb_t cb;
        void *userdata;
        uint64_t deadline; /* CLOCK_MONOTONIC; 0 once reported (the client's one timer: c->timer) */
        bool internal; /* qmp_capabilities: not counted, cannot be cancelled */
        /* Reported (timed out or cancelled) but not answered by QEMU yet: kept, without
         * callback or timer, so that its late reply is recognized as its own. */
        bool orphan;
        LIST_FIELDS(QmpRequest);
};

struct QmpClient {
        /* The owner holds one reference; dispatch holds another while it runs callbacks, so
         * that a callback may call qmp_client_free() and the struct outlives the unwinding. */
        unsigned n_ref;
        bool free_requested;
        QmpState state;

        sd_event *event;
        sd_event_source *io;
        sd_event_source *error_source; /* reports a write error met inside qmp_send() */
        /* One timer for every request's timeout, armed for the earliest deadline or later: a
         * request answered in time costs no timer system call. When it fires, the requests
         * due fail and it is armed for the next deadline. */
        sd_event_source *timer;
        uint64_t timer_at; /* when it fires (0: disarmed) */
        int fd;
        uint32_t io_events;
        int write_error;

        QmpCallbacks callbacks;
        void *userdata;

        char version[64]; /* "major.minor.micro", empty before the greeting */

        /* Input lines. Inside a line longer than QMP_LINE_MAX its bytes are dropped unread
         * until its '\n'; then the request it answers fails with -EFBIG (in_discard_id; 0:
         * it answers none known). */
        LineBuf in;
        uint64_t in_discard_id;

        /* Output: bytes [out_start, out_end) are queued. Before READY only out_gate bytes
         * (the qmp_capabilities line, always first in the queue) may be written. */
        char *out;
        size_t out_alloc, out_start, out_end;
        size_t caps_len, out_gate;
        /* Bytes written since the connection began, and descriptors that go out (as
         * SCM_RIGHTS) with the byte at stream position pos: the first of their command. */
        uint64_t out_sent;
        struct {
                uint64_t pos;
                int fd;
        } out_fds[QMP_FDS_MAX];
        size_t n_out_fds;

        uint64_t id_pool[QMP_ID_POOL];
        size_t id_pool_left;
        /* Every request QEMU has not answered yet, in submission order, orphans included.
         * QEMU answers in this order (no out-of-band execution is negotiated), and every
         * line written is one well-formed object (json_wire_check_line()), which earns
         * exactly one reply: a reply with no usable id belongs to the head. */
        LIST_HEAD(QmpRequest) requests; /* in the order sent */
        size_t n_requests; /* live ones, without the internal request */
        size_t n_orphans;
        bool orphans_forgotten; /* some owed replies can no longer be placed */
};

static void qmp_client_disconnect(QmpClient *c, int error);

static QmpClient *qmp_client_ref(QmpClient *c) {
        c->n_ref++;
        return c;
}

static void qmp_client_unref(QmpClient *c) {
        if (--c->n_ref > 0)
                return;
        /* Only reached through qmp_client_free(), which failed every request already. */
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->error_source);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        linebuf_free(&c->in);
        free(c->out);
        sd_event_unref(c->event);
        free(c);
}

/* ---- requests ---- */

static void qmp_request_unlink_free(QmpRequest *req) {
        QmpClient *c = req->client;

        LIST_REMOVE(&c->requests, req);
        if (req->orphan)
                c->n_orphans--;
        else if (!req->internal)
                c->n_requests--;
        free(req);
}

/* The request stays in the list, reported: QEMU still owes its reply. */
static void qmp_request_orphan(QmpRequest *req) {
        QmpClient *c = req->client;

        req->deadline = 0;
        req->cb = NULL;
        req->userdata = NULL;
        req->orphan = true;
        c->n_requests--;
        c->n_orphans++;
        if (c->n_orphans > QMP_ORPHANS_MAX) {
                /* QEMU has not answered thousands of requests: it is stuck. */
                QmpRequest *o;

                LIST_FOREACH(o, &c->requests)
                        if (o->orphan) {
                                qmp_request_unlink_free(o);
                                break;
                        }
                c->orphans_forgotten = true;
        }
}

/* Runs the callback last and touches nothing afterwards: the callback may free the client.
 * A request that timed out or was cancelled while connected stays as an orphan. */
static void qmp_request_complete(QmpRequest *req, int error, json_t *result, const char *err_class,
                                 const char *err_desc) {
        QmpClient *c = req->client;
        qmp_reply_cb_t cb = req->cb;
        void *userdata = req->userdata;

        if (IN_SET(error, -ETIMEDOUT, -ECANCELED) && !req->internal && c->state != QMP_STATE_DISCONNECTED)
                qmp_request_orphan(req);
        else
                qmp_request_unlink_free(req);
        if (cb)
                cb(c, error, result, err_class, err_desc, userdata);
}

/* Live requests and orphans. */
static QmpRequest *qmp_find_request(QmpClient *c, uint64_t id) {
        QmpRequest *req;

        LIST_FOREACH(req, &c->requests)
                if (req->id == id)
                        return req;
        return NULL;
}

/* QEMU answered req (by id, or by position): whatever was submitted before it and is
 * still listed will never be answered, and an orphan's answer goes nowhere. Returns
 * req when it is live (the caller completes it), NULL when it was an orphan. */
static QmpRequest *qmp_request_answered(QmpClient *c, QmpRequest *req) {
        while (c->requests.head != req) {
                QmpRequest *o = c->requests.head;
                if (!o->orphan)
                        break; /* a live one: leave it to its timeout */
                log_debug("QMP request %" PRIu64 " was never answered", o->id);
                qmp_request_unlink_free(o);
        }
        if (!req->orphan)
                return req;
        log_debug("Dropping late QMP reply to request %" PRIu64, req->id);
        qmp_request_unlink_free(req);
        return NULL;
}

static void qmp_fail_requests(QmpClient *c) {
        QmpRequest *req;

        /* Callbacks cannot add requests: the client is DISCONNECTED, qmp_send() says -ENOTCONN. */
        while ((req = c->requests.head))
                if (req->orphan)
                        qmp_request_unlink_free(req);
                else
                        qmp_request_complete(req, -ECONNRESET, NULL, NULL, NULL);
}

static int qmp_timer_arm(QmpClient *c, uint64_t deadline, uint64_t accuracy);

/* The earliest deadline of the live requests (0: none). */
static uint64_t qmp_next_deadline(QmpClient *c) {
        uint64_t next = 0;
        QmpRequest *req;

        LIST_FOREACH(req, &c->requests)
                if (req->deadline > 0 && (next == 0 || req->deadline < next))
                        next = req->deadline;
        return next;
}

static int qmp_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QmpClient *c = qmp_client_ref(userdata);
        uint64_t now = 0, next;

        c->timer_at = 0;
        (void) sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        /* One at a time, from the head again after each callback (which may send, cancel, or
         * free the client: then the list is empty). */
        for (;;) {
                QmpRequest *req, *due = NULL;

                LIST_FOREACH(req, &c->requests)
                        if (req->deadline > 0 && req->deadline <= now) {
                                due = req;
                                break;
                        }
                if (!due)
                        break;
                log_debug("QMP request %" PRIu64 " timed out", due->id);
                qmp_request_complete(due, -ETIMEDOUT, NULL, NULL, NULL);
        }
        next = c->free_requested ? 0 : qmp_next_deadline(c);
        if (next > 0)
                (void) qmp_timer_arm(c, next, 1);
        qmp_client_unref(c);
        return 0;
}

/* Makes sure the timer fires by deadline (it may fire earlier: for an earlier request, or
 * one since answered; then it is armed again for the next). */
static int qmp_timer_arm(QmpClient *c, uint64_t deadline, uint64_t accuracy) {
        int r;

        if (c->timer_at > 0 && c->timer_at <= deadline)
                return 0;
        if (!c->timer) {
                r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, deadline, accuracy, qmp_on_timer, c);
                if (r < 0)
                        return r;
        } else {
                r = sd_event_source_set_time(c->timer, deadline);
                if (r >= 0)
                        r = sd_event_source_set_time_accuracy(c->timer, accuracy);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        return r;
        }
        c->timer_at = deadline;
        return 0;
}

/* ---- output ---- */

static int qmp_update_io_events(QmpClient *c) {
        bool writable = c->out_start < c->out_end && (c->state == QMP_STATE_READY || c->out_gate > 0);
        uint32_t events = EPOLLIN | (writable ? EPOLLOUT : 0);
        int r;

        if (events == c->io_events)
                return 0;
        r = sd_event_source_set_io_events(c->io, events);
        if (r < 0)
                return r;
        c->io_events = events;
        return 0;
}

/* Writes what the socket accepts; returns 0 (also when it would block) or -errno. */
static int qmp_output_flush(QmpClient *c) {
        while (c->out_start < c->out_end) {
                size_t n = c->out_end - c->out_start;
                ssize_t k;

                if (c->state != QMP_STATE_READY) {
                        if (c->out_gate == 0)
                                break;
                        if (n > c->out_gate)
                                n = c->out_gate;
                }
                /* A descriptor travels with the first byte of its command: write up to that
                 * byte without it, then from that byte with it. */
                if (c->n_out_fds > 0 && c->out_fds[0].pos > c->out_sent &&
                    c->out_fds[0].pos - c->out_sent < n)
                        n = (size_t) (c->out_fds[0].pos - c->out_sent);
                if (c->n_out_fds > 0 && c->out_fds[0].pos == c->out_sent) {
                        union {
                                struct cmsghdr h;
                                char buf[CMSG_SPACE(sizeof(int))];
                        } control = {};
                        struct iovec iov = { .iov_base = c->out + c->out_start, .iov_len = n };
                        struct msghdr mh = {
                                .msg_iov = &iov,
                                .msg_iovlen = 1,
                                .msg_control = &control,
                                .msg_controllen = sizeof control,
                        };
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cm), &c->out_fds[0].fd, sizeof(int));
                        k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
                        if (k > 0) {
                                safe_close(c->out_fds[0].fd);
                                memmove(c->out_fds, c->out_fds + 1, --c->n_out_fds * sizeof c->out_fds[0]);
                        }
                } else
                        /* MSG_NOSIGNAL: a vanished QEMU is an EPIPE to handle, not a SIGPIPE. */
                        k = send(c->fd, c->out + c->out_start, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return negative_errno();
                }
                c->out_start += (size_t) k;
                c->out_sent += (uint64_t) k;
                if (c->state != QMP_STATE_READY) {
                        c->out_gate -= (size_t) k;
                        log_debug("QMP: negotiating, wrote %zd bytes", k);
                }
        }

        if (c->out_start == c->out_end) {
                c->out_start = c->out_end = 0;
                if (c->out_alloc > QMP_OUTPUT_KEEP) {
                        free(c->out);
                        c->out = NULL;
                        c->out_alloc = 0;
                }
        }
        return qmp_update_io_events(c);
}

/* Makes room for n more bytes after out_end; the queue never exceeds QMP_OUTPUT_MAX. */
static int qmp_output_reserve(QmpClient *c, size_t n) {
        size_t used = c->out_end - c->out_start, a;
        char *p;

        if (n > QMP_OUTPUT_MAX || used > QMP_OUTPUT_MAX - n)
                return -ENOBUFS;
        if (c->out_alloc - c->out_end >= n)
                return 0;
        if (c->out_start > 0) {
                memmove(c->out, c->out + c->out_start, used);
                c->out_start = 0;
                c->out_end = used;
                if (c->out_alloc - used >= n)
                        return 0;
        }

        a = c->out_alloc > 0 ? c->out_alloc * 2 : QMP_OUTPUT_INITIAL;
        if (a < used + n)
                a = used + n;
        if (a > QMP_OUTPUT_MAX)
                a = QMP_OUTPUT_MAX;
        p = realloc(c->out, a);
        if (!p)
                return -ENOMEM;
        c->out = p;
        c->out_alloc = a;
        return 0;
}

/* Queues {"execute":"NAME","arguments":{...},"id":ID}\n. QEMU 7.2 reads its QMP socket
 * one byte per recvmsg(), so every byte costs latency: the line is compact, and empty
 * arguments are left out (QEMU treats them alike). The name was validated, so it needs
 * no escaping. Either queues the whole line or nothing. */
static int qmp_output_append_command(QmpClient *c, const char *execute, json_t *arguments, uint64_t id) {
        static const char p_execute[] = "{\"execute\":\"", p_arguments[] = "\",\"arguments\":",
                          p_id_args[] = ",\"id\":", p_id_noargs[] = "\",\"id\":", p_end[] = "}\n";
        size_t name_len = strlen(execute), args_len = 0, n;
        char id_buf[24], *p;
        int id_len, r;

        if (arguments && json_object_size(arguments) > 0) {
                /* Only fails on allocation failure (or a reference cycle, a caller bug). */
                args_len = json_dumpb(arguments, NULL, 0, JSON_COMPACT);
                if (args_len == 0)
                        return -ENOMEM;
        }
        id_len = snprintf(id_buf, sizeof id_buf, "%" PRIu64, id);

        n = QMP_STRLEN(p_execute) + name_len + QMP_STRLEN(p_end) + (size_t) id_len +
            (args_len > 0 ? QMP_STRLEN(p_arguments) + args_len + QMP_STRLEN(p_id_args) : QMP_STRLEN(p_id_noargs));
        r = qmp_output_reserve(c, n);
        if (r < 0)
                return r;

        p = c->out + c->out_end;
        p = mempcpy(p, p_execute, QMP_STRLEN(p_execute));
        p = mempcpy(p, execute, name_len);
        if (args_len > 0) {
                p = mempcpy(p, p_arguments, QMP_STRLEN(p_arguments));
                if (json_dumpb(arguments, p, args_len, JSON_COMPACT) != args_len)
                        return -ENOMEM;
                p += args_len;
                p = mempcpy(p, p_id_args, QMP_STRLEN(p_id_args));
        } else
                p = mempcpy(p, p_id_noargs, QMP_STRLEN(p_id_noargs));
        p = mempcpy(p, id_buf, (size_t) id_len);
        p = mempcpy(p, p_end, QMP_STRLEN(p_end));

        /* What QEMU reads is what was judged: nothing its parser would split, reset on
         * or refuse without an id leaves (the bytes stay beyond out_end, unsent). */
        r = json_wire_check_line(c->out + c->out_end, n - 1, JSON_WIRE_DEPTH_MAX);
        if (r < 0) {
                log_debug_errno(r, "Refusing to send QMP command %s: %m", execute);
                return -EINVAL;
        }

        c->out_end += n;
        return 0;
}

/* A fresh random id that no listed request (orphans included) carries. */
static uint64_t qmp_new_id(QmpClient *c) {
        for (;;) {
                uint64_t v;

                if (c->id_pool_left == 0) {
                        ssize_t k = getrandom(c->id_pool, sizeof c->id_pool, GRND_NONBLOCK);
                        if (k != (ssize_t) sizeof c->id_pool)
                                k = getrandom(c->id_pool, sizeof c->id_pool, GRND_INSECURE);
                        if (k != (ssize_t) sizeof c->id_pool)
                                /* No kernel randomness at all (pre-5.6 kernel in early boot):
                                 * ids still differ, though they are no longer secret. */
                                for (size_t i = 0; i < QMP_ID_POOL; i++)
                                        c->id_pool[i] = (now_usec(CLOCK_MONOTONIC) ^ ((uint64_t) getpid() << 32) ^
                                                         (uint64_t) (uintptr_t) c ^ i) *
                                                        UINT64_C(0x9E3779B97F4A7C15);
                        c->id_pool_left = QMP_ID_POOL;
                }
                v = c->id_pool[--c->id_pool_left] & QMP_ID_MASK;
                if (v != 0 && !qmp_find_request(c, v))
                        return v;
        }
}

static int qmp_submit(QmpClient *c, const char *execute, json_t *arguments, uint64_t timeout_usec,
                      qmp_reply_cb_t cb, void *userdata, bool internal, QmpRequest **ret) {
        _cleanup_free_ QmpRequest *req = NULL;
        uint64_t accuracy;
        int r;

        req = calloc(1, sizeof *req);
        if (!req)
                return -ENOMEM;
        *req = (QmpRequest) {
                .client = c,
                .id = qmp_new_id(c),
                .cb = cb,
                .userdata = userdata,
                .internal = internal,
        };

        if (timeout_usec == 0)
                timeout_usec = QMP_DEFAULT_TIMEOUT_USEC;
        /* Slack in proportion to the timeout: short timeouts stay precise (sd-event's default
         * is 250 ms), long ones may still be coalesced with other wakeups. */
        accuracy = timeout_usec / 16;
        if (accuracy > 250 * USEC_PER_MSEC)
                accuracy = 250 * USEC_PER_MSEC;
        if (accuracy == 0)
                accuracy = 1;
        uint64_t now = 0;
        (void) sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        req->deadline = now + timeout_usec;
        r = qmp_timer_arm(c, req->deadline, accuracy);
        if (r < 0)
                return r;

        r = qmp_output_append_command(c, execute, arguments, req->id);
        if (r < 0)
                return r; /* the timer finds no request due, or another one's */

        LIST_APPEND(&c->requests, req);
        if (!internal)
                c->n_requests++;

        *ret = TAKE_PTR(req);
        return 0;
}

/* ---- connection state ---- */

/* Stops all I/O. Idempotent. Requests stay until they are failed. The input buffer may be
 * released while qmp_input_dispatch() runs: it checks the state after every line. */
static void qmp_client_close(QmpClient *c) {
        c->state = QMP_STATE_DISCONNECTED;
        c->io = sd_event_source_disable_unref(c->io);
        c->error_source = sd_event_source_disable_unref(c->error_source);
        c->fd = safe_close(c->fd);
        linebuf_free(&c->in);
        free(c->out);
        c->out = NULL;
        c->out_alloc = c->out_start = c->out_end = c->out_gate = 0;
        for (size_t i = 0; i < c->n_out_fds; i++)
                safe_close(c->out_fds[i].fd);
        c->n_out_fds = 0;
}

static void qmp_client_disconnect(QmpClient *c, int error) {
        if (c->state == QMP_STATE_DISCONNECTED)
                return;

        log_debug_errno(error, "QMP connection ended: %m");
        qmp_client_close(c);

        qmp_client_ref(c);
        qmp_fail_requests(c);
        /* A request callback may have freed the client: its owner is gone, so tell nobody. */
        if (!c->free_requested && c->callbacks.on_disconnect)
                c->callbacks.on_disconnect(c, error, c->userdata);
        qmp_client_unref(c);
}

static int qmp_on_deferred_error(sd_event_source *s, void *userdata) {
        QmpClient *c = userdata;

        qmp_client_disconnect(c, c->write_error);
        return 0;
}

static void qmp_on_capabilities(QmpClient *c, int error, json_t *result, const char *err_class,
                                const char *err_desc, void *userdata) {
        int r;

        switch (error) {
        case 0:
                break;
        case -ECONNRESET:
                return; /* already disconnecting */
        case -EREMOTEIO:
                log_debug("QMP capabilities negotiation refused: %s", err_class);
                qmp_client_disconnect(c, -EPROTO);
                return;
        default:
                qmp_client_disconnect(c, error);
                return;
        }

        c->state = QMP_STATE_READY;
        r = qmp_output_flush(c); /* requests queued during negotiation */
        if (r < 0) {
                qmp_client_disconnect(c, r);
                return;
        }
        if (c->callbacks.on_ready)
                c->callbacks.on_ready(c, c->userdata);
}

/* The reply to the resynchronizing request: the stream is ours from here on. */
static void qmp_on_resync(QmpClient *c, int error, json_t *result, const char *err_class,
                          const char *err_desc, void *userdata) {
        int r;

        if (error == -ECONNRESET)
                return;
        if (error < 0 && error != -EREMOTEIO) {
                qmp_client_disconnect(c, error);
                return;
        }
        c->state = QMP_STATE_READY;
        r = qmp_output_flush(c);
        if (r < 0) {
                qmp_client_disconnect(c, r);
                return;
        }
        if (c->callbacks.on_ready)
                c->callbacks.on_ready(c, c->userdata);
}

/* ---- classification ---- */

static bool qmp_json_uint(json_t *v, json_int_t *ret) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *ret = json_integer_value(v);
        return true;
}

/* {"QMP": {"version": {"qemu": {"major": M, "minor": m, "micro": u}, "package": "..."},
 *          "capabilities": [...]}} */
static int qmp_handle_greeting(QmpClient *c, json_t *msg) {
        json_t *qmp = json_object_get(msg, "QMP");
        json_t *version = json_object_get(qmp, "version");
        json_t *qemu = json_object_get(version, "qemu");
        json_t *caps = json_object_get(qmp, "capabilities");
        json_int_t major, minor, micro;
        json_t *cap;
        size_t i;

        if (!json_is_object(qmp) || !json_is_object(version) || !json_is_object(qemu) ||
            !json_is_string(json_object_get(version, "package")) || !json_is_array(caps) ||
            !qmp_json_uint(json_object_get(qemu, "major"), &major) ||
            !qmp_json_uint(json_object_get(qemu, "minor"), &minor) ||
            !qmp_json_uint(json_object_get(qemu, "micro"), &micro)) {
                log_debug("QMP greeting malformed");
                return -EPROTO;
        }
        json_array_foreach(caps, i, cap)
                if (!json_is_string(cap)) {
                        log_debug("QMP greeting capability %zu is not a string", i);
                        return -EPROTO;
                }

        (void) snprintf(c->version, sizeof c->version, "%lld.%lld.%lld", (long long) major,
                        (long long) minor, (long long) micro);
        log_debug("QMP greeting from QEMU %s", c->version);

        c->state = QMP_STATE_NEGOTIATING;
        c->out_gate = c->caps_len;
        return qmp_output_flush(c);
}

/* QEMU stamps events with the host's realtime clock. A missing or garbled stamp is
 * replaced by the current realtime clock, the nearest thing to when it was sent. */
static uint64_t qmp_event_timestamp(json_t *ts) {
        json_int_t sec, usec;

        if (qmp_json_uint(json_object_get(ts, "seconds"), &sec) &&
            qmp_json_uint(json_object_get(ts, "microseconds"), &usec) && usec < (json_int_t) USEC_PER_SEC &&
            (uint64_t) sec <= (UINT64_MAX - (uint64_t) usec) / USEC_PER_SEC)
                return (uint64_t) sec * USEC_PER_SEC + (uint64_t) usec;

        log_debug("QMP event without a valid timestamp, using the current time");
        return now_usec(CLOCK_REALTIME);
}

static int qmp_handle_event(QmpClient *c, json_t *msg, json_t *name) {
        json_t *data = json_object_get(msg, "data");
        json_auto_t *empty = NULL;
        uint64_t ts;

        if (!json_is_string(name)) {
                log_debug("Dropping QMP event whose name is not a string");
                return 0;
        }
        if (!json_is_object(data)) {
                if (data)
                        log_debug("QMP event %s: data is not an object, passing {}", json_string_value(name));
                data = empty = json_object();
                if (!empty)
                        return -ENOMEM;
        }
        ts = qmp_event_timestamp(json_object_get(msg, "timestamp"));

        if (c->callbacks.on_event)
                c->callbacks.on_event(c, json_string_value(name), data, ts, c->userdata);
        return 0;
}

/* Printable ASCII for the log: QEMU's text may quote the request. */
static void qmp_sanitize(char *dst, size_t size, const char *src) {
        size_t n = 0;

        for (; src && *src && n + 1 < size; src++)
                dst[n++] = *src >= 0x20 && *src < 0x7f ? *src : '?';
        dst[n] = '\0';
}

/* An error without an id: QEMU could not read a request (its parser failed). Nothing the
 * client writes should cause one, so it is logged as the anomaly it is. Replies come in
 * order and each line written earns one, so it answers the oldest request not yet
 * answered: that one fails (or, an orphan, is forgotten). */
static int qmp_handle_idless_error(QmpClient *c, json_t *error) {
        json_t *cls = json_object_get(error, "class"), *desc = json_object_get(error, "desc");
        char shown[128];
        QmpRequest *req = c->requests.head;

        char what[256];

        qmp_sanitize(shown, sizeof shown, json_is_string(desc) ? json_string_value(desc) : "");
        (void) snprintf(what, sizeof what, "error reply without an id (%s), %s", shown,
                        req ? (req->orphan ? "taken as the late answer to an expired request"
                                           : "failing the oldest request")
                            : "with no request waiting");
        log_debug("QMP protocol anomaly: %s", what);
        if (c->callbacks.on_anomaly) {
                qmp_client_ref(c);
                c->callbacks.on_anomaly(c, what, c->userdata);
                bool gone = c->state == QMP_STATE_DISCONNECTED;
                qmp_client_unref(c);
                if (gone)
                        return 0;
        }
        req = c->requests.head; /* the callback may have cancelled it */
        if (!req)
                return 0;
        req = qmp_request_answered(c, req);
        if (req)
                qmp_request_complete(req, -EREMOTEIO, NULL, json_is_string(cls) ? json_string_value(cls) : "GenericError",
                                     json_is_string(desc) ? json_string_value(desc) : "unknown error");
        return 0;
}

static int qmp_handle_reply(QmpClient *c, json_t *msg, json_t *error) {
        json_t *id = json_object_get(msg, "id");
        json_int_t id_value;
        QmpRequest *req;

        if (!id && error)
                return qmp_handle_idless_error(c, error);
        if (!qmp_json_uint(id, &id_value)) {
                log_debug("Dropping QMP reply without a valid id");
                return 0;
        }
        req = qmp_find_request(c, (uint64_t) id_value);
        if (!req) {
                log_debug("Dropping QMP reply to unknown or forgotten request %lld", (long long) id_value);
                return 0;
        }
        req = qmp_request_answered(c, req);
        if (!req)
                return 0;

        if (error) {
                json_t *cls = json_object_get(error, "class"), *desc = json_object_get(error, "desc");

                qmp_request_complete(req, -EREMOTEIO, NULL, json_is_string(cls) ? json_string_value(cls) : "GenericError",
                                     json_is_string(desc) ? json_string_value(desc) : "unknown error");
        } else
                qmp_request_complete(req, 0, json_object_get(msg, "return"), NULL, NULL);
        return 0;
}

static int qmp_dispatch_line(QmpClient *c, const char *line, size_t len) {
        json_auto_t *msg = NULL;
        json_error_t err;
        json_t *v;

        if (len == 0)
                return 0;

        /* A raw NUL byte is invalid JSON whatever the flags. "\u0000" inside a string is
         * accepted (JSON_ALLOW_NUL): QEMU writes guest-influenced text (HMP output, device
         * properties) and such a string must not cost the VM its monitor; readers of
         * strings use their length or stop at the NUL. No JSON_DECODE_ANY: a top-level
         * scalar is invalid, and so is trailing garbage. */
        msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (c->state == QMP_STATE_RESYNC) {
                /* What the previous owner left half read, events and replies owed to it:
                 * nothing but the reply to our own request counts. */
                json_int_t id_value;
                if (!msg && json_error_code(&err) == json_error_out_of_memory)
                        return -ENOMEM;
                if (!msg || !json_is_object(msg) || !c->requests.head ||
                    !qmp_json_uint(json_object_get(msg, "id"), &id_value) ||
                    (uint64_t) id_value != c->requests.head->id) {
                        log_debug("QMP: resynchronizing, dropping a line of %zu bytes", len);
                        return 0;
                }
                return qmp_handle_reply(c, msg, json_object_get(msg, "error"));
        }
        if (!msg) {
                if (json_error_code(&err) == json_error_out_of_memory)
                        return -ENOMEM;
                /* The text may quote the peer's bytes: give the position only. */
                log_debug("Invalid JSON from QMP peer at byte %d", err.position);
                return -EPROTO;
        }
        if (!json_is_object(msg)) {
                log_debug("QMP message is not an object");
                return -EPROTO;
        }

        if (c->state == QMP_STATE_GREETING)
                return qmp_handle_greeting(c, msg);
        if ((v = json_object_get(msg, "event")))
                return qmp_handle_event(c, msg, v);
        if ((v = json_object_get(msg, "error")) || json_object_get(msg, "return"))
                return qmp_handle_reply(c, msg, v);

        log_debug("Dropping unrecognized QMP message");
        return 0;
}

/* ---- input ---- */

/* The end of an over-long reply arrived: the request it answered fails. */
static void qmp_input_dropped(QmpClient *c) {
        /* It timed out or was cancelled meanwhile: it is an orphan now. */
        QmpRequest *req = c->in_discard_id != 0 ? qmp_find_request(c, c->in_discard_id) : NULL;

        if (req)
                req = qmp_request_answered(c, req);
        if (req)
                qmp_request_complete(req, -EFBIG, NULL, NULL, NULL);
}

static int qmp_input_dispatch(QmpClient *c) {
        for (;;) {
                const char *line;
                size_t len;
                int r;

                switch (linebuf_next(&c->in, QMP_LINE_MAX, &line, &len)) {
                case LINEBUF_NONE:
                        linebuf_shrink(&c->in);
                        return 0;
                case LINEBUF_LINE:
                        r = qmp_dispatch_line(c, line, len);
                        if (r < 0)
                                return r;
                        break;
                case LINEBUF_DROPPED:
                        qmp_input_dropped(c);
                        break;
                case LINEBUF_TOO_LONG:
                        /* Too long to hold. QEMU answers in order, so once negotiated a reply
                         * line belongs to the oldest request not answered yet: drop the line
                         * and fail that request alone (or, when it already timed out, nothing:
                         * QEMU was slow, not hostile); the connection stays. Anything else
                         * this long, with no reply owed, is a violation. */
                        if (c->state != QMP_STATE_RESYNC &&
                            (c->state != QMP_STATE_READY || (!c->requests.head && !c->orphans_forgotten) ||
                             (c->requests.head && c->requests.head->internal))) {
                                log_debug("QMP line longer than %u bytes", QMP_LINE_MAX);
                                return -EPROTO;
                        }
                        log_debug("QMP reply longer than %u bytes, dropping it", QMP_LINE_MAX);
                        c->in_discard_id =
                                c->requests.head && c->state == QMP_STATE_READY ? c->requests.head->id : 0;
                        return 0;
                }
                /* A callback may have ended the connection, and the buffer with it. */
                if (c->state == QMP_STATE_DISCONNECTED)
                        return 0;
        }
}

/* Returns 1 at the end of the stream, 0 when more may come, -errno on failure. */
static int qmp_input_read(QmpClient *c) {
        size_t space;
        ssize_t n;
        char *p;
        int r;

        /* Never full at its bound here: qmp_input_dispatch() refused a longer line. */
        r = linebuf_reserve(&c->in, 1, &p, &space);
        if (r < 0)
                return r;

        n = read(c->fd, p, space);
        if (c->state != QMP_STATE_READY)
                log_debug("QMP: %s, read %zd%s%s", c->state == QMP_STATE_GREETING ? "awaiting the greeting" : "negotiating",
                          n, n < 0 ? ": " : " bytes", n < 0 ? strerror(errno) : "");
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                /* Linux reports ECONNRESET instead of EOF when the peer closed with our
                 * bytes unread, after everything it sent has been read. QEMU 7.2 reads
                 * commands byte by byte and acts on the closing '}', so after "quit" it
                 * exits with our '\n' unread: that is a normal end. */
                if (errno == ECONNRESET)
                        return linebuf_pending(&c->in) > 0 ? -EPROTO : 1;
                return negative_errno();
        }
        if (n == 0) {
                if (linebuf_pending(&c->in) > 0) {
                        log_debug("QMP stream ended inside a line");
                        return -EPROTO;
                }
                return 1;
        }

        linebuf_commit(&c->in, (size_t) n);
        return qmp_input_dispatch(c);
}

static int qmp_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QmpClient *c = qmp_client_ref(userdata);
        int r = 0;

        /* Read first: after a hang-up the last replies may still be buffered. */
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                r = qmp_input_read(c);
        if (r == 0 && c->state != QMP_STATE_DISCONNECTED && (revents & EPOLLOUT))
                r = qmp_output_flush(c);
        if (r != 0)
                qmp_client_disconnect(c, r > 0 ? 0 : r);

        qmp_client_unref(c);
        return 0;
}

/* ---- public API ---- */

/* At most this many reads when draining: what a QEMU that has exited left in the socket
 * (its buffer holds a few hundred KiB; each read takes what the line buffer has room for). */
#define QMP_DRAIN_READS_MAX 64U

void qmp_client_read_pending(QmpClient *c) {
        int r = 0;

        if (!c || c->state == QMP_STATE_DISCONNECTED || c->fd < 0)
                return;
        qmp_client_ref(c);
        for (unsigned i = 0; i < QMP_DRAIN_READS_MAX && r == 0 && c->state != QMP_STATE_DISCONNECTED; i++) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };

                if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
                        break;
                r = qmp_input_read(c);
        }
        if (r != 0 && c->state != QMP_STATE_DISCONNECTED)
                qmp_client_disconnect(c, r > 0 ? 0 : r);
        qmp_client_unref(c);
}

int qmp_client_new(sd_event *event, int fd, const QmpCallbacks *cb, void *userdata, QmpClient **ret) {
        _cleanup_close_ int owned_fd = fd;
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        QmpRequest *caps;
        int flags, r;

        if (!event || fd < 0 || !ret)
                return -EINVAL;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return negative_errno();
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (QmpClient) {
                .n_ref = 1,
                .state = QMP_STATE_GREETING,
                .event = sd_event_ref(event),
                .fd = TAKE_FD(owned_fd),
                .io_events = EPOLLIN,
                .userdata = userdata,
        };
        if (cb)
                c->callbacks = *cb;
        linebuf_init(&c->in, QMP_INPUT_INITIAL, QMP_INPUT_KEEP, QMP_INPUT_LIMIT, LINEBUF_STRIP_CR);

        r = sd_event_add_io(event, &c->io, c->fd, c->io_events, qmp_on_io, c);
        if (r < 0)
                return r;
        log_debug("QMP: watching fd %d for the greeting", c->fd);

        /* Queued now, written when the greeting arrives: its timer bounds the wait for the
         * greeting as well as for the answer. */
        r = qmp_submit(c, "qmp_capabilities", NULL, QMP_DEFAULT_TIMEOUT_USEC, qmp_on_capabilities, NULL,
                       true, &caps);
        if (r < 0)
                return r;
        c->caps_len = c->out_end;

        *ret = TAKE_PTR(c);
        return 0;
}

int qmp_client_adopt(sd_event *event, int fd, const char *version, const QmpCallbacks *cb, void *userdata,
                     QmpClient **ret) {
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;
        QmpRequest *req;
        int r;

        r = qmp_client_new(event, fd, cb, userdata, &c);
        if (r < 0)
                return r;
        /* Replace the queued qmp_capabilities (the session is negotiated already) by one
         * 0xFF byte, which resets QEMU's JSON lexer should the previous owner have left a
         * request half written, and a query-status whose reply marks the end of whatever
         * was owed to the previous owner. */
        req = c->requests.head;
        qmp_request_unlink_free(req);
        c->out_start = c->out_end = 0;
        c->caps_len = 0;
        r = qmp_output_reserve(c, 1);
        if (r < 0)
                return r;
        c->out[c->out_end++] = (char) 0xff;
        r = qmp_submit(c, "query-status", NULL, QMP_DEFAULT_TIMEOUT_USEC, qmp_on_resync, NULL, true, &req);
        if (r < 0)
                return r;
        c->state = QMP_STATE_RESYNC;
        c->out_gate = c->out_end - c->out_start;
        (void) snprintf(c->version, sizeof c->version, "%s", version ?: "");
        r = qmp_output_flush(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

QmpClient *qmp_client_free(QmpClient *c) {
        /* A second call, from a callback that runs during the first, is a no-op. */
        if (!c || c->free_requested)
                return NULL;

        c->free_requested = true;
        qmp_client_close(c);
        qmp_fail_requests(c);
        qmp_client_unref(c);
        return NULL;
}

int qmp_send_fd(QmpClient *c, const char *execute, json_t *arguments, int fd, uint64_t timeout_usec,
                qmp_reply_cb_t cb, void *userdata, uint64_t *ret_id) {
        _cleanup_close_ int owned = fd;
        uint64_t pos;
        int r;

        if (!c || fd < 0)
                return -EINVAL;
        if (c->state == QMP_STATE_DISCONNECTED)
                return -ENOTCONN;
        if (c->n_out_fds >= QMP_FDS_MAX)
                return -ENOBUFS;
        pos = c->out_sent + (c->out_end - c->out_start);
        /* Queued before anything can be written (qmp_send() may flush at once). */
        c->out_fds[c->n_out_fds].pos = pos;
        c->out_fds[c->n_out_fds].fd = owned;
        c->n_out_fds++;
        r = qmp_send(c, execute, arguments, timeout_usec, cb, userdata, ret_id);
        if (r < 0) {
                /* Nothing of the command was queued: the descriptor is the last one, unsent. */
                if (c->n_out_fds > 0 && c->out_fds[c->n_out_fds - 1].fd == owned &&
                    c->out_fds[c->n_out_fds - 1].pos == pos)
                        c->n_out_fds--;
                else
                        owned = -EBADF; /* closed with the connection */
                return r;
        }
        TAKE_FD(owned);
        return 0;
}

int qmp_send(QmpClient *c, const char *execute, json_t *arguments, uint64_t timeout_usec,
             qmp_reply_cb_t cb, void *userdata, uint64_t *ret_id) {
        QmpRequest *req;
        int r;

        if (!c || !qapi_name_is_valid(execute, QMP_COMMAND_NAME_MAX) || (arguments && !json_is_object(arguments)))
                return -EINVAL;
        if (c->state == QMP_STATE_DISCONNECTED)
                return -ENOTCONN;
        if (c->n_requests >= QMP_PENDING_MAX)
                return -EBUSY;

        r = qmp_submit(c, execute, arguments, timeout_usec, cb, userdata, false, &req);
        if (r < 0)
                return r;
        if (ret_id)
                *ret_id = req->id;

        /* Write right away rather than after another trip through epoll: this is the latency
         * every command pays. With EPOLLOUT armed the socket is full; the io source goes on. */
        if (c->state == QMP_STATE_READY && !(c->io_events & EPOLLOUT)) {
                r = qmp_output_flush(c);
                if (r < 0 && !c->error_source) {
                        /* Callbacks never run from inside qmp_send(): report from the loop. */
                        c->write_error = r;
                        r = sd_event_add_defer(c->event, &c->error_source, qmp_on_deferred_error, c);
                        if (r < 0) {
                                qmp_request_unlink_free(req);
                                return r;
                        }
                }
        }
        return 0;
}

int qmp_cancel(QmpClient *c, uint64_t id) {
        QmpRequest *req = c ? qmp_find_request(c, id) : NULL;

        if (!req || req->internal || req->orphan)
                return -ENOENT;
        qmp_request_complete(req, -ECANCELED, NULL, NULL, NULL);
        return 0;
}

const char *qmp_client_version(QmpClient *c) {
        return c && c->version[0] ? c->version : NULL;
}

bool qmp_client_is_ready(QmpClient *c) {
        return c && c->state == QMP_STATE_READY;
}

size_t qmp_client_pending(QmpClient *c) {
        return c ? c->n_requests : 0;
}
