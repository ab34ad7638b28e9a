/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QMP client against a scripted peer on a socketpair (the test plays QEMU), and
 * once against a real qemu-system-x86_64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "json-wire.h"
#include "macro.h"
#include "qmp.h"

#define DEADLINE_USEC (20 * USEC_PER_SEC)
#define GREETING \
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, " \
        "\"package\": \"Debian 1:7.2+dfsg-7\"}, \"capabilities\": [\"oob\"]}}\r\n"

typedef struct Fixture Fixture;

typedef struct Reply {
        Fixture *f;
        int calls;
        int error;
        unsigned seq;
        char *result; /* compact JSON of "return" */
        char *err_class, *err_desc;
        bool free_client;    /* qmp_client_free() from inside the callback */
        bool send_again;     /* qmp_send() from inside the callback */
        int send_again_result;
        struct Reply *again; /* the callback's own request */
} Reply;

typedef struct Event {
        char *name;
        char *data;
        uint64_t timestamp;
        unsigned seq;
} Event;

struct Fixture {
        sd_event *event;
        QmpClient *client;
        int peer;
        char *pbuf; /* what the client wrote, not yet consumed */
        size_t plen, palloc;

        unsigned seq;
        int ready;
        int disconnects;
        int disconnect_error;
        unsigned disconnect_seq;
        bool free_in_disconnect;
        bool free_in_event;
        Event events[64];
        size_t n_events;
        pid_t qemu;
};

/* ---- callbacks: record only; assertions stay in the test body ---- */

static void on_ready(QmpClient *c, void *userdata) {
        Fixture *f = userdata;
        f->ready++;
}

static void on_event(QmpClient *c, const char *name, json_t *data, uint64_t timestamp_usec, void *userdata) {
        Fixture *f = userdata;

        if (f->n_events < ELEMENTSOF(f->events)) {
                Event *e = &f->events[f->n_events++];
                e->name = strdup(name);
                e->data = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
                e->timestamp = timestamp_usec;
                e->seq = ++f->seq;
        }
        if (f->free_in_event) {
                qmp_client_free(c);
                f->client = NULL;
        }
}

static void on_disconnect(QmpClient *c, int error, void *userdata) {
        Fixture *f = userdata;

        f->disconnects++;
        f->disconnect_error = error;
        f->disconnect_seq = ++f->seq;
        if (f->free_in_disconnect) {
                qmp_client_free(c);
                f->client = NULL;
        }
}

static const QmpCallbacks callbacks = {
        .on_ready = on_ready,
        .on_event = on_event,
        .on_disconnect = on_disconnect,
};

static void reply_cb(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                     void *userdata) {
        Reply *r = userdata;

        r->calls++;
        r->error = error;
        r->seq = ++r->f->seq;
        free(r->result);
        free(r->err_class);
        free(r->err_desc);
        r->result = result ? json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        r->err_class = err_class ? strdup(err_class) : NULL;
        r->err_desc = err_desc ? strdup(err_desc) : NULL;

        if (r->send_again)
                r->send_again_result = qmp_send(c, "query-status", NULL, 0, reply_cb, r->again, NULL);
        if (r->free_client) {
                qmp_client_free(c);
                r->f->client = NULL;
        }
}

static void reply_done(Reply *r) {
        free(r->result);
        free(r->err_class);
        free(r->err_desc);
        *r = (Reply) { .f = r->f };
}

/* ---- driving the loop ---- */

#define RUN_UNTIL(f, cond)                                                                 \
        do {                                                                               \
                uint64_t _deadline_ = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;           \
                while (!(cond)) {                                                          \
                        assert_true(now_usec(CLOCK_MONOTONIC) < _deadline_);               \
                        assert_true(sd_event_run((f)->event, 10 * USEC_PER_MSEC) >= 0);    \
                }                                                                          \
        } while (0)

static void run_for(Fixture *f, uint64_t usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;

        for (uint64_t n; (n = now_usec(CLOCK_MONOTONIC)) < end;)
                assert_true(sd_event_run(f->event, end - n) >= 0);
}

/* ---- the peer (QEMU's side) ---- */

static void peer_write_n(Fixture *f, const char *buf, size_t n) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;

        while (n > 0) {
                ssize_t k = send(f->peer, buf, n, MSG_NOSIGNAL);
                if (k < 0) {
                        assert_true(errno == EAGAIN);
                        assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                        assert_true(sd_event_run(f->event, USEC_PER_MSEC) >= 0);
                        continue;
                }
                buf += k;
                n -= (size_t) k;
        }
}

static void peer_write(Fixture *f, const char *s) {
        peer_write_n(f, s, strlen(s));
}

_printf_(2, 3) static void peer_writef(Fixture *f, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        assert_true(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        peer_write(f, s);
}

/* Pulls what the client wrote into pbuf; returns the bytes read (0 if none yet). */
static size_t peer_fill(Fixture *f) {
        ssize_t k;

        if (f->palloc - f->plen < 4096) {
                f->palloc = f->palloc * 2 + 4096;
                f->pbuf = realloc(f->pbuf, f->palloc);
                assert_non_null(f->pbuf);
        }
        k = recv(f->peer, f->pbuf + f->plen, f->palloc - f->plen, 0);
        if (k < 0) {
                assert_true(errno == EAGAIN);
                return 0;
        }
        f->plen += (size_t) k;
        return (size_t) k;
}

/* The next line the client wrote, parsed; runs the loop while waiting. */
static json_t *peer_read(Fixture *f) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        char *nl;

        while (!(nl = memchr(f->pbuf ?: "", '\n', f->plen))) {
                assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                if (peer_fill(f) == 0)
                        assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        }

        size_t len = (size_t) (nl - f->pbuf);
        json_error_t err;
        json_t *msg = json_loadb(f->pbuf, len, JSON_REJECT_DUPLICATES, &err);
        assert_non_null(msg);
        memmove(f->pbuf, nl + 1, f->plen - len - 1);
        f->plen -= len + 1;
        return msg;
}

/* Reads the next command, checks its name, returns its id. */
static uint64_t peer_expect(Fixture *f, const char *execute, char **ret_arguments) {
        json_auto_t *msg = peer_read(f);
        json_t *id = json_object_get(msg, "id");

        assert_true(json_is_string(json_object_get(msg, "execute")));
        assert_string_equal(json_string_value(json_object_get(msg, "execute")), execute);
        assert_true(json_is_integer(id));
        if (ret_arguments) {
                json_t *a = json_object_get(msg, "arguments");
                *ret_arguments = a ? json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        } else
                assert_null(json_object_get(msg, "arguments"));
        return (uint64_t) json_integer_value(id);
}

/* Nothing more arrives from the client while the loop runs for a while. */
static void peer_expect_silence(Fixture *f) {
        run_for(f, 20 * USEC_PER_MSEC);
        (void) peer_fill(f);
        assert_int_equal(f->plen, 0);
}

static void negotiate(Fixture *f) {
        uint64_t id;

        peer_write(f, GREETING);
        id = peer_expect(f, "qmp_capabilities", NULL);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, f->ready == 1);
        assert_true(qmp_client_is_ready(f->client));
}

/* ---- fixture ---- */

static int fixture_new(Fixture **ret) {
        _cleanup_free_ Fixture *f = calloc(1, sizeof *f);
        int fds[2];

        assert_non_null(f);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
        f->peer = fds[1];
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(qmp_client_new(f->event, fds[0], &callbacks, f, &f->client), 0);
        *ret = TAKE_PTR(f);
        return 0;
}

static void fixture_free(Fixture *f) {
        if (!f)
                return;
        f->client = qmp_client_free(f->client);
        if (f->qemu > 0) {
                (void) kill(f->qemu, SIGKILL);
                (void) waitpid(f->qemu, NULL, 0);
        }
        safe_close(f->peer);
        for (size_t i = 0; i < f->n_events; i++) {
                free(f->events[i].name);
                free(f->events[i].data);
        }
        free(f->pbuf);
        sd_event_unref(f->event);
        free(f);
}

static int setup(void **state) {
        return fixture_new((Fixture **) state);
}

static int setup_ready(void **state) {
        fixture_new((Fixture **) state);
        negotiate(*state);
        return 0;
}

static int teardown(void **state) {
        fixture_free(*state);
        return 0;
}

/* ---- tests ---- */

static void test_negotiate(void **state) {
        Fixture *f = *state;
        uint64_t id;

        assert_null(qmp_client_version(f->client));
        assert_false(qmp_client_is_ready(f->client));
        /* Nothing is written before the greeting. */
        peer_expect_silence(f);

        peer_write(f, GREETING);
        id = peer_expect(f, "qmp_capabilities", NULL);
        assert_string_equal(qmp_client_version(f->client), "7.2.22");
        assert_false(qmp_client_is_ready(f->client));
        assert_int_equal(f->ready, 0);
        assert_int_equal(qmp_cancel(f->client, id), -ENOENT); /* internal */

        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, f->ready == 1);
        assert_true(qmp_client_is_ready(f->client));
        assert_int_equal(qmp_client_pending(f->client), 0);
        assert_int_equal(f->disconnects, 0);
}

static void test_queued_before_ready(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id, caps;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        assert_int_equal(qmp_client_pending(f->client), 1);
        peer_expect_silence(f);

        peer_write(f, GREETING);
        caps = peer_expect(f, "qmp_capabilities", NULL);
        assert_true(caps != id);
        /* Only qmp_capabilities until it succeeded. */
        peer_expect_silence(f);

        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", caps);
        assert_int_equal(peer_expect(f, "query-status", NULL), id);
        assert_int_equal(f->ready, 1);
        peer_writef(f, "{\"return\": {\"status\": \"running\"}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.result, "{\"status\":\"running\"}");
        reply_done(&r);
}

static void test_out_of_order(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f }, b = { .f = f };
        uint64_t ia, ib;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &a, &ia), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, &ib), 0);
        assert_true(ib != ia);
        /* Never from inside qmp_send(). */
        assert_int_equal(a.calls + b.calls, 0);
        assert_int_equal(qmp_client_pending(f->client), 2);
        assert_int_equal(peer_expect(f, "query-status", NULL), ia);
        assert_int_equal(peer_expect(f, "query-name", NULL), ib);

        peer_writef(f, "{\"return\": {\"name\": \"b\"}, \"id\": %" PRIu64 "}\r\n", ib);
        RUN_UNTIL(f, b.calls == 1);
        assert_int_equal(a.calls, 0);
        peer_writef(f, "{\"return\": [1, \"x\"], \"id\": %" PRIu64 "}\r\n", ia);
        RUN_UNTIL(f, a.calls == 1);

        assert_int_equal(b.error, 0);
        assert_string_equal(b.result, "{\"name\":\"b\"}");
        assert_int_equal(a.error, 0);
        assert_string_equal(a.result, "[1,\"x\"]");
        assert_true(b.seq < a.seq);
        assert_int_equal(qmp_client_pending(f->client), 0);
        reply_done(&a);
        reply_done(&b);
}

static void test_in_order(void **state) {
        Fixture *f = *state;
        Reply r[5];
        uint64_t ids[5];

        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                r[i] = (Reply) { .f = f };
                assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r[i], &ids[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                assert_int_equal(peer_expect(f, "query-status", NULL), ids[i]);
                peer_writef(f, "{\"return\": %zu, \"id\": %" PRIu64 "}\r\n", i, ids[i]);
        }
        RUN_UNTIL(f, r[ELEMENTSOF(r) - 1].calls == 1);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                char expect[8];
                snprintf(expect, sizeof expect, "%zu", i);
                assert_int_equal(r[i].calls, 1);
                assert_string_equal(r[i].result, expect);
                if (i > 0)
                        assert_true(r[i - 1].seq < r[i].seq);
                reply_done(&r[i]);
        }
}

static void test_arguments(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        json_auto_t *args = json_pack("{s:s}", "command-line", "info version");
        json_auto_t *empty = json_object();
        _cleanup_free_ char *got = NULL;
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "human-monitor-command", args, 0, reply_cb, &r, &id), 0);
        assert_int_equal(peer_expect(f, "human-monitor-command", &got), id);
        assert_string_equal(got, "{\"command-line\":\"info version\"}");
        /* The client serialized the arguments; the caller may change them now. */
        assert_int_equal(json_object_set_new(args, "x", json_true()), 0);
        peer_writef(f, "{\"return\": \"7.2.22\\r\\n\", \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, r.calls == 1);
        assert_string_equal(r.result, "\"7.2.22\\r\\n\"");

        /* Empty arguments are left out: QEMU reads them byte by byte. */
        assert_int_equal(qmp_send(f->client, "query-status", empty, 0, NULL, NULL, &id), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), id);
        reply_done(&r);
}

/* A descriptor travels with the first byte of its command, not before, not later. */
static void test_send_fd(void **state) {
        Fixture *f = *state;
        char buf[4096];
        size_t len = 0, fd_at = SIZE_MAX, first_end;
        int p[2], got_fd = -1, n_fds = 0;
        struct stat st;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, NULL, NULL, NULL), 0);
        assert_int_equal(qmp_send_fd(f->client, "getfd", NULL, p[1], 0, NULL, NULL, NULL), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, NULL, NULL, NULL), 0);
        assert_int_equal(qmp_send_fd(f->client, "getfd", NULL, -1, 0, NULL, NULL, NULL), -EINVAL);
        run_for(f, 20 * USEC_PER_MSEC);
        for (;;) {
                union {
                        struct cmsghdr h;
                        char c[CMSG_SPACE(sizeof(int) * 4)];
                } control;
                /* One byte at a time: the kernel hands a descriptor over with the first byte read of
                 * the write that carried it, so its position shows. */
                struct iovec iov = { .iov_base = buf + len, .iov_len = len + 1 < sizeof buf ? 1 : 0 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                                     .msg_controllen = sizeof control };
                ssize_t k = recvmsg(f->peer, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (k <= 0)
                        break;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                n_fds += (int) ((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                                memcpy(&got_fd, CMSG_DATA(c), sizeof(int));
                                fd_at = len;
                        }
                len += (size_t) k;
        }
        buf[len] = '\0';
        assert_non_null(strstr(buf, "query-name"));
        first_end = (size_t) (strchr(buf, '\n') - buf) + 1;
        assert_int_equal(n_fds, 1);
        assert_int_equal(fd_at, first_end);
        assert_true(strncmp(buf + first_end, "{\"execute\":\"getfd\"", 18) == 0);
        assert_int_equal(fstat(got_fd, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
        close(got_fd);
        close(p[0]);
}

static void test_send_invalid(void **state) {
        Fixture *f = *state;
        json_auto_t *array = json_array();
        static const char *const bad[] = { "", "a b", "x\"y", "x\\", "quit\n", "é" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(qmp_send(f->client, bad[i], NULL, 0, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(qmp_send(f->client, NULL, NULL, 0, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(qmp_send(f->client, "query-status", array, 0, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(qmp_send(NULL, "query-status", NULL, 0, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(qmp_send(f->client, "__org.example_x-cmd", NULL, 0, NULL, NULL, NULL), 0);
        assert_int_equal(qmp_client_pending(f->client), 1);
        assert_int_equal(qmp_cancel(f->client, 12345), -ENOENT);
        assert_int_equal(qmp_cancel(NULL, 1), -ENOENT);
        assert_null(qmp_client_version(NULL));
        assert_false(qmp_client_is_ready(NULL));
        assert_int_equal(qmp_client_pending(NULL), 0);
        assert_null(qmp_client_free(NULL));
}

static void test_error_reply(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "nope", NULL, 0, reply_cb, &r, &id), 0);
        peer_writef(f,
                    "{\"id\": %" PRIu64 ", \"error\": {\"class\": \"CommandNotFound\", "
                    "\"desc\": \"The command nope has not been found\"}}\r\n",
                    id);
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(r.error, -EREMOTEIO);
        assert_null(r.result);
        assert_string_equal(r.err_class, "CommandNotFound");
        assert_string_equal(r.err_desc, "The command nope has not been found");
        reply_done(&r);
}

static void test_error_wrong_types(void **state) {
        Fixture *f = *state;
        static const char *const errors[] = {
                "{\"class\": 42, \"desc\": [\"x\"]}",
                "{}",
                "\"GenericError\"",
                "null",
                "{\"class\": \"DeviceNotFound\"}",
        };
        static const char *const classes[] = { "GenericError", "GenericError", "GenericError", "GenericError",
                                                "DeviceNotFound" };

        for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
                Reply r = { .f = f };
                uint64_t id;

                assert_int_equal(qmp_send(f->client, "x", NULL, 0, reply_cb, &r, &id), 0);
                peer_writef(f, "{\"error\": %s, \"id\": %" PRIu64 "}\n", errors[i], id);
                RUN_UNTIL(f, r.calls == 1);
                assert_int_equal(r.error, -EREMOTEIO);
                assert_string_equal(r.err_class, classes[i]);
                assert_string_equal(r.err_desc, "unknown error");
                reply_done(&r);
        }
        assert_int_equal(f->disconnects, 0);
}

/* Replies without a usable id, or to nothing we asked, are dropped; the connection lives. */
static void test_bad_ids(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        peer_writef(f, "{\"return\": {}, \"id\": \"%" PRIu64 "\"}\r\n", id);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 ".0}\r\n", id);
        peer_writef(f, "{\"return\": {}, \"id\": -%" PRIu64 "}\r\n", id);
        peer_writef(f, "{\"return\": {}, \"id\": [%" PRIu64 "]}\r\n", id);
        peer_write(f, "{\"return\": {}}\r\n");
        peer_write(f, "{\"return\": {}, \"id\": 999}\r\n");
        peer_write(f, "{\"error\": {\"class\": \"X\", \"desc\": \"y\"}, \"id\": 998}\r\n");
        peer_write(f, "{\"something\": \"else\"}\r\n");
        peer_write(f, "{\"event\": 7, \"data\": {}}\r\n");
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(r.calls, 0);
        assert_int_equal(f->n_events, 0);

        peer_writef(f, "{\"return\": {\"ok\": true}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.result, "{\"ok\":true}");
        assert_int_equal(f->disconnects, 0);
        reply_done(&r);
}

static void test_events(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id, before, after;

        assert_int_equal(qmp_send(f->client, "stop", NULL, 0, reply_cb, &r, &id), 0);
        peer_write(f,
                   "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, \"event\": \"STOP\", "
                   "\"data\": {\"reason\": \"x\", \"n\": 1}}\r\n");
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id);
        peer_write(f, "{\"timestamp\": {\"seconds\": 5, \"microseconds\": 0}, \"event\": \"RESUME\"}\r\n");
        peer_write(f, "{\"event\": \"ODD\", \"data\": [1]}\r\n");
        RUN_UNTIL(f, f->n_events == 3);

        assert_int_equal(r.calls, 1);
        assert_string_equal(f->events[0].name, "STOP");
        assert_string_equal(f->events[0].data, "{\"n\":1,\"reason\":\"x\"}");
        assert_int_equal(f->events[0].timestamp, UINT64_C(1700000000123456));
        assert_true(f->events[0].seq < r.seq);
        assert_string_equal(f->events[1].name, "RESUME");
        assert_string_equal(f->events[1].data, "{}");
        assert_int_equal(f->events[1].timestamp, 5 * USEC_PER_SEC);
        assert_true(r.seq < f->events[1].seq);
        assert_string_equal(f->events[2].name, "ODD");
        assert_string_equal(f->events[2].data, "{}");

        /* Missing or garbled timestamps: the current realtime clock. */
        static const char *const stamps[] = {
                "",
                ", \"timestamp\": 3",
                ", \"timestamp\": {\"seconds\": \"1\", \"microseconds\": 0}",
                ", \"timestamp\": {\"seconds\": 1, \"microseconds\": 1000000}",
                ", \"timestamp\": {\"seconds\": -1, \"microseconds\": -1}",
                ", \"timestamp\": {\"seconds\": 9223372036854775807, \"microseconds\": 0}",
        };
        before = now_usec(CLOCK_REALTIME);
        for (size_t i = 0; i < ELEMENTSOF(stamps); i++)
                peer_writef(f, "{\"event\": \"E%zu\"%s}\n", i, stamps[i]);
        RUN_UNTIL(f, f->n_events == 3 + ELEMENTSOF(stamps));
        after = now_usec(CLOCK_REALTIME);
        for (size_t i = 3; i < f->n_events; i++) {
                assert_true(f->events[i].timestamp >= before);
                assert_true(f->events[i].timestamp <= after);
        }
        assert_int_equal(f->disconnects, 0);
        reply_done(&r);
}

static void test_byte_by_byte(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        char line[256];
        uint64_t id, caps;

        /* The greeting, one byte per write, each followed by a loop iteration. */
        for (const char *p = GREETING; *p; p++) {
                peer_write_n(f, p, 1);
                assert_true(sd_event_run(f->event, 0) >= 0);
        }
        caps = peer_expect(f, "qmp_capabilities", NULL);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", caps);
        RUN_UNTIL(f, f->ready == 1);

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        snprintf(line, sizeof line,
                 "{\"event\": \"X\", \"data\": {\"a\": \"b\"}}\r\n{\"return\": {\"status\": \"paused\"}, "
                 "\"id\": %" PRIu64 "}\r\n",
                 id);
        for (const char *p = line; *p; p++) {
                peer_write_n(f, p, 1);
                assert_true(sd_event_run(f->event, 0) >= 0);
        }
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(f->n_events, 1);
        assert_string_equal(f->events[0].data, "{\"a\":\"b\"}");
        assert_string_equal(r.result, "{\"status\":\"paused\"}");
        reply_done(&r);
}

static void test_many_lines_one_write(void **state) {
        Fixture *f = *state;
        Reply r[3];
        uint64_t ids[3];
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, alloc = 64 * 1024;

        buf = malloc(alloc);
        assert_non_null(buf);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                r[i] = (Reply) { .f = f };
                assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r[i], &ids[i]), 0);
        }
        for (size_t i = 0; i < 60; i++) {
                n += (size_t) snprintf(buf + n, alloc - n, "{\"event\": \"E%zu\", \"data\": {\"i\": %zu}}\r\n", i, i);
                if (i % 20 == 19)
                        n += (size_t) snprintf(buf + n, alloc - n, "{\"return\": %zu, \"id\": %" PRIu64 "}\n", i,
                                               ids[i / 20]);
        }
        /* Empty lines are skipped; a partial line at the end is completed by a second write. */
        n += (size_t) snprintf(buf + n, alloc - n, "\r\n\n");
        n += (size_t) snprintf(buf + n, alloc - n, "{\"event\": \"LA");
        peer_write_n(f, buf, n);
        RUN_UNTIL(f, r[2].calls == 1);
        assert_int_equal(f->n_events, 60);
        peer_write(f, "ST\"}\n");
        RUN_UNTIL(f, f->n_events == 61);
        for (size_t i = 0; i < 60; i++) {
                char name[16];
                snprintf(name, sizeof name, "E%zu", i);
                assert_string_equal(f->events[i].name, name);
        }
        assert_string_equal(f->events[60].name, "LAST");
        assert_true(r[0].seq < r[1].seq && r[1].seq < r[2].seq);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                assert_int_equal(r[i].error, 0);
                reply_done(&r[i]);
        }
}

/* A line of exactly QMP_LINE_MAX bytes is still fine. */
static void test_line_max(void **state) {
        Fixture *f = *state;
        static const char head[] = "{\"event\": \"BIG\", \"data\": {\"s\": \"", tail[] = "\"}}";
        _cleanup_free_ char *buf = malloc(QMP_LINE_MAX + 1);
        size_t fill = QMP_LINE_MAX - (sizeof head - 1) - (sizeof tail - 1);

        assert_non_null(buf);
        memcpy(buf, head, sizeof head - 1);
        memset(buf + sizeof head - 1, 'a', fill);
        memcpy(buf + sizeof head - 1 + fill, tail, sizeof tail - 1);
        buf[QMP_LINE_MAX] = '\n';
        peer_write_n(f, buf, QMP_LINE_MAX + 1);
        RUN_UNTIL(f, f->n_events == 1 || f->disconnects > 0);
        assert_int_equal(f->disconnects, 0);
        assert_string_equal(f->events[0].name, "BIG");
        assert_int_equal(strlen(f->events[0].data), fill + strlen("{\"s\":\"\"}"));
}

/* A reply too long to hold is dropped unread and fails its request alone; the
 * connection stays and the next request is answered. */
static void test_reply_too_long(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f }, r2 = { .f = f };
        static char chunk[64 * 1024];
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        size_t total = 0;
        uint64_t id1, id2;

        assert_int_equal(qmp_send(f->client, "human-monitor-command", NULL, 0, reply_cb, &r, NULL), 0);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r2, NULL), 0);
        id1 = peer_expect(f, "human-monitor-command", NULL);
        id2 = peer_expect(f, "query-status", NULL);
        memset(chunk, 'x', sizeof chunk);
        chunk[0] = '{';
        while (total < QMP_LINE_MAX + 2U * sizeof chunk) {
                ssize_t k = send(f->peer, chunk, sizeof chunk, MSG_NOSIGNAL);
                if (k < 0) {
                        assert_int_equal(errno, EAGAIN);
                        assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                        assert_true(sd_event_run(f->event, USEC_PER_MSEC) >= 0);
                        continue;
                }
                total += (size_t) k;
                chunk[0] = 'x';
        }
        (void) id1;
        /* The end of the long line, then the next reply in the same write. */
        peer_writef(f, "\"}\n{\"return\": {\"status\": \"running\"}, \"id\": %" PRIu64 "}\n", id2);
        RUN_UNTIL(f, r.calls == 1 && r2.calls == 1);
        assert_int_equal(r.error, -EFBIG);
        assert_int_equal(r2.error, 0);
        assert_int_equal(f->disconnects, 0);
        assert_true(qmp_client_is_ready(f->client));
        reply_done(&r);
        reply_done(&r2);
}

/* ---- what reaches QEMU is what was judged ---- */

/* {"a":[[...[1]...]]} with depth objects and arrays in all (the object counts). */
static json_t *nested_args(unsigned depth) {
        json_t *v = json_integer(1);

        for (unsigned i = 1; i < depth; i++) {
                json_t *a = json_array();
                assert_int_equal(json_array_append_new(a, v), 0);
                v = a;
        }
        json_t *o = json_object();
        assert_int_equal(json_object_set_new(o, "a", v), 0);
        return o;
}

/* The line carries the request's own braces too: arguments may nest one level less. */
static void test_send_depth_limit(void **state) {
        Fixture *f = *state;
        json_auto_t *ok = nested_args(JSON_WIRE_DEPTH_MAX - 1), *deep = nested_args(JSON_WIRE_DEPTH_MAX);
        json_auto_t *smuggle = NULL;
        Reply r = { .f = f };
        _cleanup_free_ char *args = NULL;
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "query-status", deep, 0, reply_cb, &r, NULL), -EINVAL);
        /* The shape that made QEMU drop what it read and run the rest. */
        {
                char text[256] = "{\"x\":";
                size_t n = strlen(text);
                for (unsigned i = 0; i < 70; i++)
                        text[n++] = '[';
                n += (size_t) sprintf(text + n, "{\"execute\":\"quit\"}");
                for (unsigned i = 0; i < 70; i++)
                        text[n++] = ']';
                strcpy(text + n, "}");
                smuggle = json_loads(text, 0, NULL);
        }
        assert_non_null(smuggle);
        assert_int_equal(qmp_send(f->client, "query-status", smuggle, 0, reply_cb, &r, NULL), -EINVAL);
        assert_int_equal(qmp_client_pending(f->client), 0);
        peer_expect_silence(f);

        assert_int_equal(qmp_send(f->client, "query-status", ok, 0, reply_cb, &r, &id), 0);
        assert_int_equal(peer_expect(f, "query-status", &args), id);
        assert_non_null(args);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\n", id);
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(r.error, 0);
        reply_done(&r);
}

/* QEMU refuses noncharacters without naming the request; they never leave. */
static void test_send_noncharacters(void **state) {
        Fixture *f = *state;
        static const char *const bad[] = {
                "\xef\xbf\xbf",     /* U+FFFF */
                "\xef\xbf\xbe",     /* U+FFFE */
                "\xef\xb7\x90",     /* U+FDD0 */
                "\xef\xb7\xaf",     /* U+FDEF */
                "\xf0\x9f\xbf\xbe", /* U+1FFFE */
                "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        };
        static const char *const good[] = {
                "\xef\xbf\xbd",     /* U+FFFD */
                "\xef\xb7\x8f",     /* U+FDCF */
                "\xef\xb7\xb0",     /* U+FDF0 */
                "\xf0\x9f\x98\x80", /* U+1F600 */
        };
        Reply r = { .f = f };
        uint64_t id;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_auto_t *v = json_pack("{s:s}", "command-line", bad[i]);
                json_auto_t *k = json_object();
                assert_non_null(v);
                assert_int_equal(json_object_set_new(k, bad[i], json_true()), 0);
                assert_int_equal(qmp_send(f->client, "human-monitor-command", v, 0, reply_cb, &r, NULL), -EINVAL);
                assert_int_equal(qmp_send(f->client, "human-monitor-command", k, 0, reply_cb, &r, NULL), -EINVAL);
        }
        peer_expect_silence(f);
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                json_auto_t *v = json_pack("{s:s}", "command-line", good[i]);
                _cleanup_free_ char *args = NULL;

                assert_int_equal(qmp_send(f->client, "human-monitor-command", v, 0, reply_cb, &r, &id), 0);
                assert_int_equal(peer_expect(f, "human-monitor-command", &args), id);
                peer_writef(f, "{\"return\": \"\", \"id\": %" PRIu64 "}\n", id);
                RUN_UNTIL(f, r.calls == 1);
                reply_done(&r);
        }
}

/* Numbers are written as jansson holds them: a thousand digits become 17. */
static void test_send_long_number(void **state) {
        Fixture *f = *state;
        char text[1100] = "{\"n\":0.";
        json_auto_t *v = NULL;
        _cleanup_free_ char *args = NULL;
        Reply r = { .f = f };
        uint64_t id;

        memset(text + 7, '3', 1000);
        strcpy(text + 1007, "}");
        v = json_loads(text, 0, NULL);
        assert_non_null(v);
        assert_int_equal(qmp_send(f->client, "query-status", v, 0, reply_cb, &r, &id), 0);
        assert_int_equal(peer_expect(f, "query-status", &args), id);
        assert_true(strlen(args) < 40);
        assert_non_null(strstr(args, "0.33333333333333331"));
        reply_done(&r);
}

/* Ids are random below 2^53, not a sequence another request could predict. */
static void test_random_ids(void **state) {
        Fixture *f = *state;
        uint64_t ids[64];
        size_t consecutive = 0;

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, NULL, NULL, &ids[i]), 0);
                assert_true(ids[i] > 0 && ids[i] < (UINT64_C(1) << 53));
                for (size_t j = 0; j < i; j++)
                        assert_true(ids[i] != ids[j]);
                if (i > 0 && (ids[i] == ids[i - 1] + 1 || ids[i] + 1 == ids[i - 1]))
                        consecutive++;
        }
        assert_true(consecutive < 4);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                assert_int_equal(peer_expect(f, "query-status", NULL), ids[i]);
}

/* An error without an id answers the oldest request not answered: it fails alone. */
static void test_idless_error(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f }, b = { .f = f };
        uint64_t ia, ib;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &a, &ia), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, &ib), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), ia);
        assert_int_equal(peer_expect(f, "query-name", NULL), ib);
        peer_write(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, \\u0001\"}}\n");
        RUN_UNTIL(f, a.calls == 1);
        assert_int_equal(a.error, -EREMOTEIO);
        assert_string_equal(a.err_class, "GenericError");
        assert_int_equal(b.calls, 0);
        peer_writef(f, "{\"return\": {\"name\": \"b\"}, \"id\": %" PRIu64 "}\n", ib);
        RUN_UNTIL(f, b.calls == 1);
        assert_int_equal(b.error, 0);
        /* With nothing owed it is dropped; the connection stays. */
        peer_write(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n");
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(f->disconnects, 0);
        assert_true(qmp_client_is_ready(f->client));
        reply_done(&a);
        reply_done(&b);
}

/* A request that timed out is still owed its reply: a late answer, an error without an
 * id or an over-long line that is its answer never reaches the request after it. */
static void test_late_replies_after_timeout(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f }, b = { .f = f };
        uint64_t ia, ib;

        /* A late reply with the expired id. */
        assert_int_equal(qmp_send(f->client, "query-status", NULL, USEC_PER_MSEC, reply_cb, &a, &ia), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), ia);
        RUN_UNTIL(f, a.calls == 1);
        assert_int_equal(a.error, -ETIMEDOUT);
        assert_int_equal(qmp_client_pending(f->client), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, &ib), 0);
        assert_int_equal(peer_expect(f, "query-name", NULL), ib);
        peer_writef(f, "{\"return\": 1, \"id\": %" PRIu64 "}\n", ia);
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(b.calls, 0);
        peer_writef(f, "{\"return\": 2, \"id\": %" PRIu64 "}\n", ib);
        RUN_UNTIL(f, b.calls == 1);
        assert_string_equal(b.result, "2");
        assert_int_equal(a.calls, 1);
        reply_done(&a);
        reply_done(&b);

        /* A late error without an id. */
        assert_int_equal(qmp_send(f->client, "query-status", NULL, USEC_PER_MSEC, reply_cb, &a, &ia), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), ia);
        RUN_UNTIL(f, a.calls == 1);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, &ib), 0);
        assert_int_equal(peer_expect(f, "query-name", NULL), ib);
        peer_write(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"late\"}}\n");
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(b.calls, 0);
        peer_writef(f, "{\"return\": 3, \"id\": %" PRIu64 "}\n", ib);
        RUN_UNTIL(f, b.calls == 1);
        assert_int_equal(b.error, 0);
        assert_int_equal(a.calls, 1);
        assert_int_equal(f->disconnects, 0);
        reply_done(&a);
        reply_done(&b);
}

/* Writes one line of more than QMP_LINE_MAX bytes ending with end. */
static void peer_write_long_line(Fixture *f, const char *end) {
        static char chunk[64 * 1024];
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        size_t total = 0;

        memset(chunk, 'x', sizeof chunk);
        chunk[0] = '{';
        while (total < QMP_LINE_MAX + 2U * sizeof chunk) {
                ssize_t k = send(f->peer, chunk, sizeof chunk, MSG_NOSIGNAL);
                if (k < 0) {
                        assert_int_equal(errno, EAGAIN);
                        assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                        assert_true(sd_event_run(f->event, USEC_PER_MSEC) >= 0);
                        continue;
                }
                total += (size_t) k;
                chunk[0] = 'x';
        }
        peer_write(f, end);
}

/* The reply to a request that timed out arrives, too long to hold: QEMU was slow, not
 * hostile. It is dropped, nothing fails, the connection stays. */
static void test_late_reply_too_long(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f }, b = { .f = f };
        uint64_t ia, ib;

        assert_int_equal(qmp_send(f->client, "human-monitor-command", NULL, USEC_PER_MSEC, reply_cb, &a, &ia), 0);
        assert_int_equal(peer_expect(f, "human-monitor-command", NULL), ia);
        RUN_UNTIL(f, a.calls == 1);
        assert_int_equal(a.error, -ETIMEDOUT);
        assert_int_equal(qmp_client_pending(f->client), 0);

        /* Nothing else waits. */
        peer_write_long_line(f, "\"}\n");
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(f->disconnects, 0);

        /* Again, with a later request waiting: that one is not failed. */
        assert_int_equal(qmp_send(f->client, "human-monitor-command", NULL, USEC_PER_MSEC, reply_cb, &a, &ia), 0);
        assert_int_equal(peer_expect(f, "human-monitor-command", NULL), ia);
        RUN_UNTIL(f, a.calls == 2);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &b, &ib), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), ib);
        peer_write_long_line(f, "\"}\n");
        peer_writef(f, "{\"return\": {\"status\": \"running\"}, \"id\": %" PRIu64 "}\n", ib);
        RUN_UNTIL(f, b.calls == 1);
        assert_int_equal(b.error, 0);
        assert_int_equal(f->disconnects, 0);
        assert_true(qmp_client_is_ready(f->client));

        /* A long line when no reply is owed at all is still a broken stream. */
        peer_write_long_line(f, "\"}\n");
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, -EPROTO);
        reply_done(&a);
        reply_done(&b);
}

/* With no request waiting, a line too long to hold is a protocol error, and reading
 * stops there. */
static void test_line_too_long(void **state) {
        Fixture *f = *state;
        static char chunk[64 * 1024];
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + DEADLINE_USEC;
        size_t total = 0;

        memset(chunk, 'x', sizeof chunk);
        chunk[0] = '{';
        /* Keep writing until the client hangs up. */
        for (;;) {
                ssize_t k = send(f->peer, chunk, sizeof chunk, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EPIPE || errno == ECONNRESET)
                                break;
                        assert_int_equal(errno, EAGAIN);
                        assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                        assert_true(sd_event_run(f->event, USEC_PER_MSEC) >= 0);
                        continue;
                }
                total += (size_t) k;
                chunk[0] = 'x';
        }
        assert_int_equal(f->disconnects, 1);
        assert_int_equal(f->disconnect_error, -EPROTO);
        /* Bounded: the line limit plus what the socket buffers held. */
        assert_true(total > QMP_LINE_MAX);
        assert_true(total < QMP_LINE_MAX + 4U * 1024U * 1024U);
}

/* "\u0000" in a string (guest-influenced text) is accepted; a raw NUL is not. */
static void test_escaped_nul(void **state) {
        Fixture *f = *state;

        peer_write(f, "{\"event\": \"X\", \"data\": {\"s\": \"a\\u0000b\"}}\n");
        RUN_UNTIL(f, f->n_events == 1 || f->disconnects > 0);
        assert_int_equal(f->disconnects, 0);
        assert_string_equal(f->events[0].name, "X");
        assert_string_equal(f->events[0].data, "{\"s\":\"a\\u0000b\"}");
}

static void test_eof_mid_request(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f }, b = { .f = f };

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &a, NULL), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, NULL), 0);
        f->peer = safe_close(f->peer);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, 0);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.error, -ECONNRESET);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.error, -ECONNRESET);
        assert_true(a.seq < f->disconnect_seq && b.seq < f->disconnect_seq);
        assert_false(qmp_client_is_ready(f->client));
        assert_string_equal(qmp_client_version(f->client), "7.2.22");
        assert_int_equal(qmp_client_pending(f->client), 0);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &a, NULL), -ENOTCONN);
        run_for(f, 20 * USEC_PER_MSEC);
        assert_int_equal(f->disconnects, 1);
        reply_done(&a);
        reply_done(&b);
}

static void test_eof_inside_line(void **state) {
        Fixture *f = *state;

        peer_write(f, "{\"event\": \"HALF");
        run_for(f, 10 * USEC_PER_MSEC);
        f->peer = safe_close(f->peer);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, -EPROTO);
        assert_int_equal(f->n_events, 0);
}

static void test_eof_before_greeting(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        f->peer = safe_close(f->peer);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, 0);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        assert_int_equal(f->ready, 0);
        assert_null(qmp_client_version(f->client));
}

static void test_timeout(void **state) {
        Fixture *f = *state;
        Reply late = { .f = f }, next = { .f = f };
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), id, id2;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 30 * USEC_PER_MSEC, reply_cb, &late, &id), 0);
        RUN_UNTIL(f, late.calls == 1);
        assert_int_equal(late.error, -ETIMEDOUT);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 >= 30 * USEC_PER_MSEC);
        assert_int_equal(qmp_client_pending(f->client), 0);

        /* The late reply is dropped; the next request works. */
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &next, &id2), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), id);
        assert_int_equal(peer_expect(f, "query-name", NULL), id2);
        peer_writef(f, "{\"return\": {\"late\": 1}, \"id\": %" PRIu64 "}\r\n", id);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id2);
        RUN_UNTIL(f, next.calls == 1);
        assert_int_equal(next.error, 0);
        assert_int_equal(late.calls, 1);
        assert_int_equal(f->disconnects, 0);
        reply_done(&late);
        reply_done(&next);
}

/* One timer serves every request: a shorter timeout sent after a longer one still fires
 * first, the longer one keeps its own deadline, and an answered request's deadline is
 * forgotten (the timer, armed for it, finds nothing due and waits for the next). */
static void test_timeouts_share_a_timer(void **state) {
        Fixture *f = *state;
        Reply lng = { .f = f }, shrt = { .f = f }, answered = { .f = f }, last = { .f = f };
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), id_long, id_short, id_answered, id_last;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 20 * USEC_PER_MSEC, reply_cb, &answered,
                                  &id_answered), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 400 * USEC_PER_MSEC, reply_cb, &lng, &id_long), 0);
        assert_int_equal(qmp_send(f->client, "query-kvm", NULL, 60 * USEC_PER_MSEC, reply_cb, &shrt, &id_short), 0);
        assert_int_equal(peer_expect(f, "query-status", NULL), id_answered);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id_answered);
        RUN_UNTIL(f, answered.calls == 1);
        assert_int_equal(answered.error, 0);
        RUN_UNTIL(f, shrt.calls == 1);
        assert_int_equal(shrt.error, -ETIMEDOUT);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 >= 60 * USEC_PER_MSEC);
        assert_int_equal(lng.calls, 0);
        assert_int_equal(qmp_client_pending(f->client), 1);
        /* A request sent now, due before the long one, fires first too. */
        assert_int_equal(qmp_send(f->client, "query-uuid", NULL, 30 * USEC_PER_MSEC, reply_cb, &last, &id_last), 0);
        RUN_UNTIL(f, last.calls == 1);
        assert_int_equal(last.error, -ETIMEDOUT);
        assert_int_equal(lng.calls, 0);
        RUN_UNTIL(f, lng.calls == 1);
        assert_int_equal(lng.error, -ETIMEDOUT);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 >= 400 * USEC_PER_MSEC);
        assert_int_equal(qmp_client_pending(f->client), 0);
        reply_done(&lng);
        reply_done(&shrt);
        reply_done(&answered);
        reply_done(&last);
}

static void test_cancel(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f }, other = { .f = f };
        uint64_t id, id2;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &other, &id2), 0);
        assert_int_equal(qmp_cancel(f->client, id), 0);
        /* Right away, from inside qmp_cancel(). */
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECANCELED);
        assert_int_equal(qmp_cancel(f->client, id), -ENOENT);
        assert_int_equal(qmp_client_pending(f->client), 1);

        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\r\n", id2);
        RUN_UNTIL(f, other.calls == 1);
        assert_int_equal(r.calls, 1);
        assert_int_equal(other.error, 0);
        reply_done(&r);
        reply_done(&other);
}

static void expect_protocol_error(const char *greeting, const char *line, size_t line_len) {
        Fixture *f = NULL;
        Reply r;

        fixture_new(&f);
        r = (Reply) { .f = f };
        if (greeting)
                negotiate(f);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        peer_write_n(f, line, line_len);
        /* Lines after the bad one are never looked at. */
        peer_write(f, "{\"event\": \"AFTER\"}\n");
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, -EPROTO);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        assert_int_equal(f->n_events, 0);
        assert_false(qmp_client_is_ready(f->client));
        if (!greeting)
                assert_null(qmp_client_version(f->client));
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), -ENOTCONN);
        reply_done(&r);
        fixture_free(f);
}

static void test_bad_greeting(void **state) {
        static const char *const bad[] = {
                "[]\n",
                "\"QMP\"\n",
                "{\"foo\": 1}\n",
                "{\"QMP\": []}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": \"7\", \"minor\": 2, \"micro\": 0}, "
                "\"package\": \"\"}, \"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2.5, \"micro\": 0}, "
                "\"package\": \"\"}, \"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": -1}, "
                "\"package\": \"\"}, \"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2}, \"package\": \"\"}, "
                "\"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": 1}, "
                "\"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}, "
                "\"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"\"}, "
                "\"capabilities\": {}}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"\"}, "
                "\"capabilities\": [\"oob\", 3]}}\n",
                "{\"QMP\": {\"version\": {\"qemu\": [7, 2, 0], \"package\": \"\"}, \"capabilities\": []}}\n",
                "{\"QMP\": {\"version\": \"7.2.0\", \"capabilities\": []}}\n",
                "{\"event\": \"RESUME\"}\n",
                "{\"return\": {}, \"id\": 1}\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_protocol_error(NULL, bad[i], strlen(bad[i]));
}

static void test_bad_lines(void **state) {
        static const struct {
                const char *s;
                size_t n;
        } bad[] = {
#define LINE(s) { s, sizeof(s) - 1 }
                LINE("{\"return\": \n"),
                LINE("{\"return\": {}, \"id\": 1} x\n"),
                LINE("{\"return\": {}, \"return\": {}, \"id\": 1}\n"),
                LINE("[1, 2]\n"),
                LINE("42\n"),
                LINE("{\"event\": \"X\0Y\"}\n"),
                LINE("{\"event\": \"X\"}\0\n"),
                LINE("\0{\"event\": \"X\"}\n"),
                LINE("{\"event\": \"\xff\xfe\"}\n"),
                LINE("{'event': 'X'}\n"),
                LINE("garbage\r\n"),
#undef LINE
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_protocol_error(GREETING, bad[i].s, bad[i].n);
}

static void test_negotiation_refused(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t caps;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        peer_write(f, GREETING);
        caps = peer_expect(f, "qmp_capabilities", NULL);
        peer_writef(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": %" PRIu64 "}\n", caps);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, -EPROTO);
        assert_int_equal(f->ready, 0);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        /* The queued request was never written. */
        (void) peer_fill(f);
        assert_int_equal(f->plen, 0);
}

static void test_free_with_pending(void **state) {
        Fixture *f = *state;
        Reply r[3], again = { .f = f };

        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                r[i] = (Reply) { .f = f };
                assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r[i], NULL), 0);
        }
        /* Callbacks that run during the free may try to send or free again. */
        r[0].send_again = true;
        r[0].again = &again;
        r[1].free_client = true;

        f->client = qmp_client_free(f->client);
        assert_int_equal(r[0].send_again_result, -ENOTCONN);
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                assert_int_equal(r[i].calls, 1);
                assert_int_equal(r[i].error, -ECONNRESET);
                reply_done(&r[i]);
        }
        assert_int_equal(again.calls, 0);
        assert_int_equal(f->disconnects, 0);
        run_for(f, 10 * USEC_PER_MSEC);
        assert_int_equal(f->disconnects, 0);
}

static void test_send_from_callback(void **state) {
        Fixture *f = *state;
        Reply first = { .f = f }, second = { .f = f };
        uint64_t id;

        first.send_again = true;
        first.again = &second;
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &first, &id), 0);
        assert_int_equal(peer_expect(f, "query-name", NULL), id);
        peer_writef(f, "{\"return\": {}, \"id\": %" PRIu64 "}\n", id);
        id = peer_expect(f, "query-status", NULL);
        assert_int_equal(first.send_again_result, 0);
        assert_int_equal(second.calls, 0);
        peer_writef(f, "{\"return\": {\"status\": \"running\"}, \"id\": %" PRIu64 "}\n", id);
        RUN_UNTIL(f, second.calls == 1);
        assert_int_equal(second.error, 0);
        reply_done(&first);
        reply_done(&second);
}

static void test_free_in_reply_callback(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f, .free_client = true }, b = { .f = f };
        uint64_t ia, ib;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &a, &ia), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, 0, reply_cb, &b, &ib), 0);
        /* Both replies and an event in one read: the rest of the batch must not be touched. */
        peer_writef(f,
                    "{\"return\": {}, \"id\": %" PRIu64 "}\n{\"return\": {}, \"id\": %" PRIu64
                    "}\n{\"event\": \"X\"}\n",
                    ia, ib);
        RUN_UNTIL(f, a.calls == 1);
        assert_null(f->client);
        assert_int_equal(a.error, 0);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.error, -ECONNRESET);
        assert_int_equal(f->n_events, 0);
        assert_int_equal(f->disconnects, 0);
        run_for(f, 10 * USEC_PER_MSEC);
        reply_done(&a);
        reply_done(&b);
}

static void test_free_in_timeout_callback(void **state) {
        Fixture *f = *state;
        Reply a = { .f = f, .free_client = true }, b = { .f = f };

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 10 * USEC_PER_MSEC, reply_cb, &a, NULL), 0);
        assert_int_equal(qmp_send(f->client, "query-name", NULL, USEC_PER_SEC, reply_cb, &b, NULL), 0);
        RUN_UNTIL(f, a.calls == 1);
        assert_int_equal(a.error, -ETIMEDOUT);
        assert_int_equal(b.calls, 1);
        assert_int_equal(b.error, -ECONNRESET);
        assert_null(f->client);
        run_for(f, 30 * USEC_PER_MSEC);
        assert_int_equal(b.calls, 1);
        reply_done(&a);
        reply_done(&b);
}

static void test_free_in_event_callback(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        f->free_in_event = true;
        peer_writef(f, "{\"event\": \"A\"}\n{\"event\": \"B\"}\n{\"return\": {}, \"id\": %" PRIu64 "}\n", id);
        RUN_UNTIL(f, f->n_events == 1);
        assert_null(f->client);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        run_for(f, 10 * USEC_PER_MSEC);
        assert_int_equal(f->n_events, 1);
        reply_done(&r);
}

static void test_free_in_disconnect(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        f->free_in_disconnect = true;
        f->peer = safe_close(f->peer);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_null(f->client);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        reply_done(&r);
}

/* A protocol error in the middle of a batch, and the client freed from on_disconnect. */
static void test_free_in_disconnect_mid_batch(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };
        uint64_t id;

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, &id), 0);
        f->free_in_disconnect = true;
        peer_writef(f, "{\"event\": \"A\"}\n{bad\n{\"return\": {}, \"id\": %" PRIu64 "}\n", id);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_null(f->client);
        assert_int_equal(f->disconnect_error, -EPROTO);
        assert_int_equal(f->n_events, 1);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        reply_done(&r);
}

static void test_pending_max(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };

        for (size_t i = 0; i < QMP_PENDING_MAX; i++)
                assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        assert_int_equal(qmp_client_pending(f->client), QMP_PENDING_MAX);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), -EBUSY);
        assert_int_equal(r.calls, 0);

        f->client = qmp_client_free(f->client);
        assert_int_equal(r.calls, QMP_PENDING_MAX);
        assert_int_equal(r.error, -ECONNRESET);
        reply_done(&r);
}

static void test_output_max(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *big = malloc(3U * 1024U * 1024U + 1);
        json_auto_t *args = NULL;
        Reply r = { .f = f };

        /* Nothing is written before the greeting, so the queue fills up. */
        assert_non_null(big);
        memset(big, 'a', 3U * 1024U * 1024U);
        big[3U * 1024U * 1024U] = 0;
        args = json_pack("{s:s}", "x", big);
        assert_non_null(args);
        assert_int_equal(qmp_send(f->client, "x", args, 0, reply_cb, &r, NULL), 0);
        assert_int_equal(qmp_send(f->client, "x", args, 0, reply_cb, &r, NULL), -ENOBUFS);
        assert_int_equal(qmp_client_pending(f->client), 1);

        /* Once negotiated the queue drains as far as the socket takes it; the peer does
         * not read yet, so some is left. Room made behind it is reused. */
        negotiate(f);
        big[512U * 1024U] = 0;
        json_object_set_new(args, "x", json_string(big));
        assert_int_equal(qmp_send(f->client, "x", args, 0, reply_cb, &r, NULL), 0);
        json_decref(peer_read(f));
        json_decref(peer_read(f));
        big[512U * 1024U] = 'a';
        json_object_set_new(args, "x", json_string(big));
        assert_int_equal(qmp_send(f->client, "x", args, 0, reply_cb, &r, NULL), 0);
        json_decref(peer_read(f));
        assert_int_equal(qmp_client_pending(f->client), 3);
        assert_int_equal(r.calls, 0);
        f->client = qmp_client_free(f->client); /* before r goes out of scope */
        assert_int_equal(r.calls, 3);
        reply_done(&r);
}

/* QEMU stopped reading: the write error surfaces from the loop, not from qmp_send(). */
static void test_write_error(void **state) {
        Fixture *f = *state;
        Reply r = { .f = f };

        assert_int_equal(shutdown(f->peer, SHUT_RD), 0);
        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &r, NULL), 0);
        assert_int_equal(r.calls, 0);
        assert_int_equal(f->disconnects, 0);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, -EPIPE);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.error, -ECONNRESET);
        reply_done(&r);
}

/* ---- a real QEMU ---- */

static char *find_in_path(const char *name) {
        const char *path = getenv("PATH") ?: "/usr/bin:/bin";

        for (const char *p = path; *p;) {
                size_t n = strcspn(p, ":");
                char *candidate = NULL;

                if (n > 0 && asprintf(&candidate, "%.*s/%s", (int) n, p, name) >= 0) {
                        if (access(candidate, X_OK) == 0)
                                return candidate;
                        free(candidate);
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return NULL;
}

/* QEMU gets one end of a socketpair as an already connected chardev ("fd=N"). */
static pid_t spawn_qemu(const char *binary, int fd) {
        pid_t parent = getpid(), pid;
        char chardev[64];

        snprintf(chardev, sizeof chardev, "socket,id=qmp,fd=%d", fd);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Dies with the test, however the test ends. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (fcntl(fd, F_SETFD, 0) < 0) /* inherit across exec */
                        _exit(127);
                execl(binary, binary, "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
                      "-chardev", chardev, "-mon", "chardev=qmp,mode=control", (char *) NULL);
                _exit(127);
        }
        return pid;
}

static void test_real_qemu(void **state) {
        _cleanup_free_ char *binary = find_in_path("qemu-system-x86_64");
        Fixture *f = NULL;
        Reply status, unknown, hmp, quit;
        json_auto_t *args = NULL;
        unsigned major, minor, micro;
        int fds[2], wstatus;
        bool shutdown_seen = false;

        if (!binary)
                skip();
        args = json_pack("{s:s}", "command-line", "info version");

        /* Owned by the teardown, which kills QEMU if an assertion ends the test early. */
        *state = f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->peer = -EBADF;
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        f->qemu = spawn_qemu(binary, fds[1]);
        safe_close(fds[1]);
        assert_int_equal(qmp_client_new(f->event, fds[0], &callbacks, f, &f->client), 0);
        status = unknown = hmp = quit = (Reply) { .f = f };

        RUN_UNTIL(f, f->ready == 1 || f->disconnects > 0);
        assert_int_equal(f->ready, 1);
        assert_int_equal(sscanf(qmp_client_version(f->client), "%u.%u.%u", &major, &minor, &micro), 3);
        print_message("QEMU %s\n", qmp_client_version(f->client));

        assert_int_equal(qmp_send(f->client, "query-status", NULL, 0, reply_cb, &status, NULL), 0);
        assert_int_equal(qmp_send(f->client, "no-such-command", NULL, 0, reply_cb, &unknown, NULL), 0);
        assert_int_equal(qmp_send(f->client, "human-monitor-command", args, 0, reply_cb, &hmp, NULL), 0);
        RUN_UNTIL(f, status.calls && unknown.calls && hmp.calls);

        assert_int_equal(status.error, 0);
        {
                json_auto_t *v = json_loads(status.result, 0, NULL);
                assert_true(json_is_string(json_object_get(v, "status")));
        }
        assert_int_equal(unknown.error, -EREMOTEIO);
        assert_string_equal(unknown.err_class, "CommandNotFound");
        assert_int_equal(hmp.error, 0);
        {
                json_auto_t *v = json_loads(hmp.result, JSON_DECODE_ANY, NULL);
                char prefix[32];
                assert_true(json_is_string(v));
                snprintf(prefix, sizeof prefix, "%u.%u.%u", major, minor, micro);
                assert_non_null(strstr(json_string_value(v), prefix));
        }

        assert_int_equal(qmp_send(f->client, "quit", NULL, 0, reply_cb, &quit, NULL), 0);
        RUN_UNTIL(f, f->disconnects == 1);
        assert_int_equal(f->disconnect_error, 0);
        /* QEMU answers quit before it exits, but the hang-up may overtake the answer. */
        assert_int_equal(quit.calls, 1);
        assert_true(quit.error == 0 || quit.error == -ECONNRESET);
        for (size_t i = 0; i < f->n_events; i++)
                if (streq(f->events[i].name, "SHUTDOWN"))
                        shutdown_seen = true;
        assert_true(shutdown_seen);

        assert_int_equal(waitpid(f->qemu, &wstatus, 0), f->qemu);
        f->qemu = 0;
        assert_true(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);

        reply_done(&status);
        reply_done(&unknown);
        reply_done(&hmp);
        reply_done(&quit);
}

/* Taking over a negotiated connection: a half-read line, stale replies and events, and
 * garbage before the reply to the client's own resynchronizing request are dropped; a
 * 0xFF byte goes first (it resets QEMU's lexer); requests made meanwhile wait; afterwards
 * the client works as usual. */
static void test_adopt(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        Reply r = { .f = f };
        int fds[2];
        uint64_t id;

        *state = f;
        assert_non_null(f);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
        f->peer = fds[1];
        assert_int_equal(sd_event_new(&f->event), 0);
        /* What the previous owner left unread. */
        peer_write(f, "us\": \"running\"}, \"id\": 12}\r\n");
        peer_write(f, "{\"event\": \"STOP\", \"data\": {}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
        peer_write(f, "{\"return\": {}, \"id\": 13}\r\n");
        assert_int_equal(qmp_client_adopt(f->event, fds[0], "7.2.22", &callbacks, f, &f->client), 0);
        assert_string_equal(qmp_client_version(f->client), "7.2.22");
        assert_false(qmp_client_is_ready(f->client));
        assert_int_equal(qmp_send(f->client, "query-kvm", NULL, 0, reply_cb, &r, NULL), 0);

        /* 0xFF, then the resynchronizing request alone. */
        RUN_UNTIL(f, peer_fill(f) > 0 || f->plen > 0);
        assert_int_equal((unsigned char) f->pbuf[0], 0xff);
        memmove(f->pbuf, f->pbuf + 1, --f->plen);
        id = peer_expect(f, "query-status", NULL);
        peer_expect_silence(f);
        /* More of the old session, an error without id for the old half request, then ours. */
        peer_write(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n");
        peer_write(f, "not json at all\r\n");
        peer_write(f, "{\"return\": {}, \"id\": 14}\r\n");
        assert_int_equal(f->ready, 0);
        peer_writef(f, "{\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, f->ready == 1);
        assert_true(qmp_client_is_ready(f->client));
        assert_int_equal(f->n_events, 0);
        assert_int_equal(f->disconnects, 0);

        /* Now the queued request, and events count again. */
        id = peer_expect(f, "query-kvm", NULL);
        peer_writef(f, "{\"return\": {\"enabled\": false}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, r.calls == 1);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.result, "{\"enabled\":false}");
        peer_write(f, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
        RUN_UNTIL(f, f->n_events == 1);
        assert_string_equal(f->events[0].name, "RESUME");
        reply_done(&r);
}

/* A line longer than QMP_LINE_MAX while resynchronizing is dropped, not fatal. */
static void test_adopt_long_line(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        int fds[2];
        uint64_t id;

        *state = f;
        assert_non_null(f);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
        f->peer = fds[1];
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(qmp_client_adopt(f->event, fds[0], NULL, &callbacks, f, &f->client), 0);
        RUN_UNTIL(f, peer_fill(f) > 0 || f->plen > 0);
        memmove(f->pbuf, f->pbuf + 1, --f->plen);
        id = peer_expect(f, "query-status", NULL);
        peer_write_long_line(f, "\"}, \"id\": 5}\r\n");
        peer_writef(f, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": %" PRIu64 "}\r\n", id);
        RUN_UNTIL(f, f->ready == 1);
        assert_int_equal(f->disconnects, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_negotiate, setup, teardown),
                cmocka_unit_test_teardown(test_adopt, teardown),
                cmocka_unit_test_teardown(test_adopt_long_line, teardown),
                cmocka_unit_test_setup_teardown(test_queued_before_ready, setup, teardown),
                cmocka_unit_test_setup_teardown(test_out_of_order, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_in_order, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_arguments, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_fd, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_invalid, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_error_reply, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_error_wrong_types, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_bad_ids, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_events, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_lines_one_write, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_line_max, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_reply_too_long, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_line_too_long, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_depth_limit, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_noncharacters, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_long_number, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_random_ids, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_idless_error, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_late_replies_after_timeout, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_late_reply_too_long, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_escaped_nul, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_eof_mid_request, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_eof_inside_line, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_eof_before_greeting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_timeouts_share_a_timer, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup_ready, teardown),
                cmocka_unit_test(test_bad_greeting),
                cmocka_unit_test(test_bad_lines),
                cmocka_unit_test_setup_teardown(test_negotiation_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_pending, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_send_from_callback, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_reply_callback, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_timeout_callback, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_event_callback, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_disconnect, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_free_in_disconnect_mid_batch, setup_ready, teardown),
                cmocka_unit_test_setup_teardown(test_pending_max, setup, teardown),
                cmocka_unit_test_setup_teardown(test_output_max, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_error, setup_ready, teardown),
                cmocka_unit_test_teardown(test_real_qemu, teardown),
        };

        /* The peer may vanish while we write to it in a test. */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
