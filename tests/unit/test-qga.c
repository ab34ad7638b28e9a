/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-agent client against a scripted guest on a socketpair (driven by the
 * same sd_event loop, so every test is single-threaded and bounded in time),
 * and once against the real qemu-ga running on the host. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "macro.h"
#include "qga-file.h"
#include "json-wire.h"
#include "qga.h"

/* ---- the scripted guest ---- */

typedef struct Seg {
        char *data; /* NULL: len bytes of fill */
        char fill;
        size_t len, off;
} Seg;

typedef struct Peer {
        int fd;
        sd_event_source *io;
        char *in; /* what the client wrote, not consumed yet */
        size_t in_len, in_cap;
        Seg *segs;
        size_t n_segs, first;
        bool eof;
} Peer;

typedef struct Reply Reply;
typedef void (*reply_hook_t)(QgaClient *c, Reply *r, json_t *result);

struct Reply {
        bool done;
        int error;
        char *json; /* compact result, NULL unless error == 0 */
        char *cls, *desc;
        uint64_t id;
        uint64_t done_usec;
        reply_hook_t hook;
        void *hook_data;
        bool no_dump;
};

typedef struct Test {
        sd_event *e;
        QgaClient *c;
        int client_fd; /* owned by c; kept for FIONREAD */
        Peer peer;
        unsigned connected_changes;
        bool connected;
        bool free_on_connected;
        char **garbage; /* result strings, freed at teardown */
        size_t n_garbage;
} Test;

static Test *t;
static bool in_api; /* a callback while set would come from within qga_send() & co. */

static char fill_buf[1024 * 1024];

static void peer_update_events(Peer *p) {
        bool pending = p->first < p->n_segs;
        if (p->io)
                assert_true(sd_event_source_set_io_events(p->io, EPOLLIN | (pending ? EPOLLOUT : 0)) >= 0);
}

static void peer_flush(Peer *p) {
        while (p->fd >= 0 && p->first < p->n_segs) {
                Seg *s = &p->segs[p->first];
                size_t n = s->len - s->off;
                ssize_t k;

                if (s->data)
                        k = send(p->fd, s->data + s->off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                else {
                        if (fill_buf[0] != s->fill)
                                memset(fill_buf, s->fill, sizeof fill_buf);
                        k = send(p->fd, fill_buf, n < sizeof fill_buf ? n : sizeof fill_buf,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                }
                if (k < 0) {
                        if (errno == EAGAIN)
                                break;
                        assert_true(errno == EPIPE || errno == ECONNRESET); /* client went away */
                        return;
                }
                s->off += (size_t) k;
                if (s->off == s->len) {
                        free(s->data);
                        s->data = NULL;
                        p->first++;
                }
        }
        peer_update_events(p);
}

static void peer_read(Peer *p) {
        for (int i = 0; i < 64; i++) {
                ssize_t k;

                if (p->in_cap - p->in_len < 65536) {
                        p->in_cap = p->in_cap * 2 + 65536;
                        p->in = realloc(p->in, p->in_cap);
                        assert_non_null(p->in);
                }
                k = read(p->fd, p->in + p->in_len, p->in_cap - p->in_len);
                if (k < 0) {
                        assert_true(errno == EAGAIN || errno == ECONNRESET);
                        return;
                }
                if (k == 0) {
                        p->eof = true;
                        (void) sd_event_source_set_enabled(p->io, SD_EVENT_OFF);
                        return;
                }
                p->in_len += (size_t) k;
        }
}

static int peer_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                peer_read(p);
        if (revents & EPOLLOUT)
                peer_flush(p);
        return 0;
}

static void peer_init(Peer *p, int fd) {
        *p = (Peer) { .fd = fd };
        assert_true(sd_event_add_io(t->e, &p->io, fd, EPOLLIN, peer_on_io, p) >= 0);
}

static void peer_close(Peer *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->fd = safe_close(p->fd);
        for (size_t i = p->first; i < p->n_segs; i++)
                free(p->segs[i].data);
        free(p->segs);
        free(p->in);
        *p = (Peer) { .fd = -EBADF };
}

static void peer_push(Seg s) {
        Peer *p = &t->peer;

        p->segs = realloc(p->segs, (p->n_segs + 1) * sizeof(Seg));
        assert_non_null(p->segs);
        p->segs[p->n_segs++] = s;
        peer_flush(p);
}

static void peer_send_len(const char *data, size_t len) {
        char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, data, len);
        peer_push((Seg) { .data = copy, .len = len });
}

static void peer_send(const char *s) {
        peer_send_len(s, strlen(s));
}

_printf_(1, 2) static void peer_sendf(const char *fmt, ...) {
        char *s;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        peer_push((Seg) { .data = s, .len = (size_t) n });
}

static void peer_fill(char ch, size_t n) {
        peer_push((Seg) { .fill = ch, .len = n });
}

static bool peer_output_empty(void) {
        return t->peer.first >= t->peer.n_segs;
}

/* ---- running the loop ---- */

static void run_once(uint64_t usec) {
        assert_true(sd_event_run(t->e, usec) >= 0);
}

/* Runs everything that is ready, without waiting. */
static void settle(void) {
        for (int i = 0; i < 10000; i++)
                if (sd_event_run(t->e, 0) == 0)
                        return;
        fail_msg("event loop does not settle");
}

#define RUN_UNTIL(cond, timeout_ms)                                                              \
        do {                                                                                     \
                uint64_t _end = now_usec(CLOCK_MONOTONIC) + (uint64_t) (timeout_ms) * 1000;      \
                while (!(cond)) {                                                                \
                        if (now_usec(CLOCK_MONOTONIC) > _end)                                    \
                                fail_msg("timed out waiting for %s", #cond);                     \
                        run_once(10 * USEC_PER_MSEC);                                            \
                }                                                                                \
        } while (0)

static int client_unread(void) {
        int n = 0;
        if (t->client_fd < 0 || ioctl(t->client_fd, FIONREAD, &n) < 0)
                return 0;
        return n;
}

/* Until the client has read and handled everything the peer sent. */
static void drain(void) {
        RUN_UNTIL(peer_output_empty() && client_unread() == 0, 20000);
        settle();
}

static void run_for(uint64_t msec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + msec * 1000;
        while (now_usec(CLOCK_MONOTONIC) < end)
                run_once(5 * USEC_PER_MSEC);
}

/* ---- what the client wrote ---- */

static bool peer_has_line(void) {
        return t->peer.in_len > 0 && memchr(t->peer.in, '\n', t->peer.in_len);
}

/* The next line the client wrote. Like qemu-ga, everything up to a 0xFF is
 * void; *ret_ff says whether there was one. */
static char *peer_line(bool *ret_ff) {
        Peer *p = &t->peer;
        char *nl, *ff, *line;
        size_t n, start = 0;

        RUN_UNTIL(peer_has_line(), 5000);
        nl = memchr(p->in, '\n', p->in_len);
        n = (size_t) (nl - p->in);
        ff = memrchr(p->in, 0xFF, n);
        if (ff)
                start = (size_t) (ff - p->in) + 1;
        line = strndup(p->in + start, n - start);
        assert_non_null(line);
        memmove(p->in, nl + 1, p->in_len - n - 1);
        p->in_len -= n + 1;
        if (ret_ff)
                *ret_ff = ff != NULL;
        return line;
}

static uint64_t peer_expect_sync(void) {
        _cleanup_free_ char *l = NULL;
        json_auto_t *v = NULL;
        json_t *id;
        bool ff;

        l = peer_line(&ff);
        assert_true(ff);
        v = json_loads(l, 0, NULL);
        assert_non_null(v);
        assert_int_equal(json_object_size(v), 2);
        assert_string_equal(json_string_value(json_object_get(v, "execute")), "guest-sync-delimited");
        id = json_object_get(json_object_get(v, "arguments"), "id");
        assert_true(json_is_integer(id));
        assert_true(json_integer_value(id) > 0);
        assert_true(json_integer_value(id) < (json_int_t) 1 << 53);
        return (uint64_t) json_integer_value(id);
}

static void peer_sync_reply(uint64_t id) {
        /* What qemu-ga really sends: a complaint about the 0xFF, then the answer. */
        peer_send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n");
        peer_sendf("\xff{\"return\": %" PRIu64 "}\n", id);
}

static void peer_sync(void) {
        peer_sync_reply(peer_expect_sync());
}

/* Returns the command's arguments (or NULL). */
static json_t *peer_expect_command(const char *execute) {
        _cleanup_free_ char *l = NULL;
        json_auto_t *v = NULL;
        json_t *args;
        bool ff;

        l = peer_line(&ff);
        assert_false(ff);
        v = json_loads(l, 0, NULL);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "execute")), execute);
        args = json_object_get(v, "arguments");
        return json_incref(args);
}

static void peer_expect_command_only(const char *execute) {
        json_decref(peer_expect_command(execute));
}

static void peer_expect_silence(uint64_t msec) {
        run_for(msec);
        assert_int_equal(t->peer.in_len, 0);
}

/* ---- client side ---- */

static void on_connected_changed(QgaClient *c, bool connected, void *userdata) {
        assert_ptr_equal(userdata, t);
        assert_false(in_api);
        assert_true(connected != t->connected); /* only actual changes */
        t->connected = connected;
        t->connected_changes++;
        if (t->free_on_connected)
                t->c = qga_client_free(c);
}

static const QgaCallbacks callbacks = {
        .on_connected_changed = on_connected_changed,
};

static char *keep(char *s) {
        assert_non_null(s);
        t->garbage = realloc(t->garbage, (t->n_garbage + 1) * sizeof(char *));
        assert_non_null(t->garbage);
        t->garbage[t->n_garbage++] = s;
        return s;
}

static void on_reply(QgaClient *c, int error, json_t *result, const char *cls, const char *desc, void *userdata) {
        Reply *r = userdata;

        assert_false(in_api);
        assert_false(r->done); /* exactly once */
        r->done = true;
        r->error = error;
        r->done_usec = now_usec(CLOCK_MONOTONIC);
        if (error == 0) {
                assert_non_null(result);
                if (!r->no_dump)
                        r->json = keep(json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY));
        } else
                assert_null(result);
        if (error == -EREMOTEIO) {
                assert_non_null(cls);
                assert_non_null(desc);
                r->cls = keep(strdup(cls));
                r->desc = keep(strdup(desc));
        } else {
                assert_null(cls);
                assert_null(desc);
        }
        if (r->hook)
                r->hook(c, r, result);
}

static int send_full(const char *execute, json_t *args, QgaReplyMode mode, uint64_t timeout_usec, size_t max_reply,
                     Reply *r) {
        int ret;

        in_api = true;
        ret = qga_send(t->c, execute, args, mode, timeout_usec, max_reply, on_reply, r, &r->id);
        in_api = false;
        if (ret >= 0)
                assert_false(r->done);
        return ret;
}

static void wait_reply(Reply *r) {
        RUN_UNTIL(r->done, 20000);
}

static void on_text(QgaClient *c, int error, const char *text, size_t len, const char *cls, const char *desc,
                    void *userdata) {
        Reply *r = userdata;

        assert_false(in_api);
        assert_false(r->done);
        r->done = true;
        r->error = error;
        if (error == 0) {
                assert_non_null(text);
                assert_int_equal(strlen(text), len);
                r->json = keep(strdup(text));
        } else
                assert_null(text);
        assert_true((error == -EREMOTEIO) == (cls != NULL && desc != NULL));
        if (cls) {
                r->cls = keep(strdup(cls));
                r->desc = keep(strdup(desc));
        }
}

/* qga_send_text(), then the sync and the command, then reply_line. */
static void exchange_text(const char *execute, QgaReplyMode mode, const char *reply_line, Reply *r) {
        in_api = true;
        assert_int_equal(qga_send_text(t->c, execute, NULL, mode, 0, 0, on_text, r, &r->id), 0);
        in_api = false;
        peer_sync();
        peer_expect_command_only(execute);
        if (reply_line)
                peer_send(reply_line);
        wait_reply(r);
}

static void send_ok(const char *execute, Reply *r) {
        assert_int_equal(send_full(execute, NULL, QGA_REPLY_NORMAL, 0, 0, r), 0);
}

/* One full exchange: sync, command, reply line. */
static void exchange(const char *execute, const char *reply_line, Reply *r) {
        send_ok(execute, r);
        peer_sync();
        peer_expect_command_only(execute);
        peer_send(reply_line);
        wait_reply(r);
}

static void attach_new_peer(bool sync_now) {
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        t->client_fd = sv[0];
        in_api = true;
        assert_int_equal(qga_client_attach(t->c, sv[0], sync_now), 0);
        in_api = false;
        peer_init(&t->peer, sv[1]);
}

static int setup_mode(QgaSyncMode mode) {
        t = calloc(1, sizeof *t);
        assert_non_null(t);
        t->peer.fd = -EBADF;
        assert_true(sd_event_new(&t->e) >= 0);
        assert_int_equal(qga_client_new(t->e, &callbacks, t, &t->c), 0);
        assert_int_equal(qga_client_set_sync_mode(t->c, mode), 0);
        /* Short enough to keep the tests fast, long enough for ASan. */
        assert_int_equal(qga_client_set_timeouts(t->c, 2 * USEC_PER_SEC, 100 * USEC_PER_MSEC), 0);
        attach_new_peer(false);
        return 0;
}

static int setup(void **state) {
        return setup_mode(QGA_SYNC_EACH_COMMAND);
}

static int setup_on_demand(void **state) {
        return setup_mode(QGA_SYNC_ON_DEMAND);
}

static int teardown(void **state) {
        /* Replies live on the tests' stacks: every test waits for all of its callbacks. */
        assert_int_equal(qga_client_pending(t->c), 0);
        t->c = qga_client_free(t->c);
        peer_close(&t->peer);
        for (size_t i = 0; i < t->n_garbage; i++)
                free(t->garbage[i]);
        free(t->garbage);
        sd_event_unref(t->e);
        free(t);
        t = NULL;
        return 0;
}

/* ---- protocol tests ---- */

static void test_ping(void **state) {
        Reply r = {}, r2 = {};

        send_ok("guest-ping", &r);
        assert_int_equal(qga_client_pending(t->c), 1);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.json, "{}");
        assert_true(t->connected);
        assert_true(qga_client_is_connected(t->c));
        assert_int_equal(t->connected_changes, 1);
        assert_int_equal(qga_client_pending(t->c), 0);

        /* Every command gets a sync of its own. */
        exchange("guest-info", "{\"return\": {\"version\": \"7.2.22\"}}\n", &r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "{\"version\":\"7.2.22\"}");
        assert_int_equal(t->connected_changes, 1);
}

/* The counters GetStats reports. */
static void test_stats_counters(void **state) {
        Reply r = {}, r2 = {}, r3 = {};
        QgaStats q;

        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.syncs + q.sync_timeouts + q.command_timeouts + q.protocol_errors + q.dropped_lines, 0);
        qga_client_get_stats(NULL, &q);
        assert_int_equal(q.syncs, 0);

        exchange("guest-ping", "{\"return\": {}}\n", &r);
        assert_int_equal(r.error, 0);
        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.syncs, 1);
        assert_int_equal(q.dropped_lines, 0);
        assert_int_equal(q.answered, 1);
        assert_true(q.answer_usec > 0);

        /* A reply that is neither return nor error. */
        exchange("guest-ping", "{\"bogus\": 1}\n", &r2);
        assert_int_equal(r2.error, -EPROTO);
        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.syncs, 2);
        assert_int_equal(q.protocol_errors, 1);

        /* A line nobody asked for. */
        peer_send("{\"return\": 5}\n");
        drain();
        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.dropped_lines, 1);

        /* A command the agent never answers. */
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 200 * USEC_PER_MSEC, 0, &r3), 0);
        peer_sync();
        peer_expect_command_only("guest-ping");
        wait_reply(&r3);
        assert_int_equal(r3.error, -ETIMEDOUT);
        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.command_timeouts, 1);
        assert_int_equal(q.sync_timeouts, 0);
        /* Neither the malformed reply nor the timeout was an answer. */
        assert_int_equal(q.answered, 1);
}

/* Results as text: a plain reply written straight from the line, anything else through
 * jansson, the same text either way; errors as with qga_send(). */
static void test_send_text(void **state) {
        Reply r1 = {}, r2 = {}, r3 = {}, r4 = {}, r5 = {};
        QgaStats q;

        exchange_text("guest-info", QGA_REPLY_NORMAL,
                      "{\"return\": {\"version\": \"7.2.22\", \"name\": \"caf\xc3\xa9\", \"n\": [1, -2]}}\n", &r1);
        assert_int_equal(r1.error, 0);
        assert_string_equal(r1.json, "{\"version\":\"7.2.22\",\"name\":\"caf\\u00E9\",\"n\":[1,-2]}");
        /* A fraction: through jansson, its text. */
        exchange_text("guest-get-time", QGA_REPLY_NORMAL, "{\"return\": 1.5}\n", &r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "1.5");
        exchange_text("guest-ping", QGA_REPLY_NORMAL,
                      "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n", &r3);
        assert_int_equal(r3.error, -EREMOTEIO);
        assert_string_equal(r3.cls, "GenericError");
        assert_null(r3.json);
        /* A duplicate key is still a protocol error. */
        exchange_text("guest-ping", QGA_REPLY_NORMAL, "{\"return\": {\"a\": 1, \"a\": 2}}\n", &r4);
        assert_int_equal(r4.error, -EPROTO);
        /* No reply (guest-shutdown): "{}". */
        exchange_text("guest-shutdown", QGA_REPLY_NONE, NULL, &r5);
        assert_int_equal(r5.error, 0);
        assert_string_equal(r5.json, "{}");
        qga_client_get_stats(t->c, &q);
        assert_int_equal(q.answered, 3);
}

static void test_ping_on_demand(void **state) {
        Reply r = {}, r2 = {};

        exchange("guest-ping", "{\"return\": {}}\n", &r);
        assert_int_equal(r.error, 0);

        /* Still in sync: the next command goes out directly. */
        send_ok("guest-info", &r2);
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": {\"version\": \"7.2.22\"}}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "{\"version\":\"7.2.22\"}");
}

static void test_arguments(void **state) {
        json_auto_t *args = json_pack("{s:s, s:i}", "path", "/tmp/a\n\"b\"}{\"execute\":\"guest-shutdown\"}", "n", 7);
        json_auto_t *seen = NULL;
        Reply r = {};

        assert_int_equal(send_full("guest-file-open", args, QGA_REPLY_NORMAL, 0, 0, &r), 0);
        peer_sync();
        seen = peer_expect_command("guest-file-open");
        /* Newlines and quotes in arguments stay inside the one JSON object. */
        assert_true(json_equal(seen, args));
        peer_send("{\"return\": 1000}\n");
        wait_reply(&r);
        assert_string_equal(r.json, "1000");
}

static void test_stale_replies_before_sync(void **state) {
        Reply r = {};
        uint64_t id;

        send_ok("guest-ping", &r);
        id = peer_expect_sync();
        peer_sendf("{\"return\": %" PRIu64 "}\n", id + 1);
        peer_send("{\"return\": {}}\n");
        peer_sendf("{\"return\": %" PRIu64 ".0}\n", id);
        peer_sendf("{\"return\": \"%" PRIu64 "\"}\n", id);
        peer_sendf("{\"return\": -%" PRIu64 "}\n", id);
        peer_sendf("{\"return\": %" PRIu64 ", \"id\": 1}\n", id);
        peer_sendf("[{\"return\": %" PRIu64 "}]\n", id);
        peer_sendf("{\"return\": %" PRIu64 "}{\"return\": %" PRIu64 "}\n", id, id);
        peer_sendf("{\"return\": %" PRIu64 ", \"return\": %" PRIu64 "}\n", id, id);
        peer_send("{\"return\": 0}\n");
        /* None of these is the answer: the command is not written. */
        peer_expect_silence(50);
        assert_false(r.done);

        peer_sendf("\xff{\"return\": %" PRIu64 "}\n", id);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {\"right\": true}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.json, "{\"right\":true}");
}

static void test_ff_resets_parser(void **state) {
        Reply r = {};
        uint64_t id;

        send_ok("guest-ping", &r);
        id = peer_expect_sync();
        /* A partial line, then the sentinel: the partial line is void. */
        peer_send("{\"return\": [1, 2");
        peer_sendf("\xff{\"return\": %" PRIu64 "}\n", id);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {\"a\": [1, 2");
        drain();
        peer_send("\xff");
        peer_send("{\"return\": {\"ok\": 1}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.json, "{\"ok\":1}");
}

static void test_garbage_before_sync_reply(void **state) {
        Reply r = {};
        uint64_t id;

        send_ok("guest-ping", &r);
        id = peer_expect_sync();
        peer_send("hello\n");
        peer_send("\x01\x02\x03\r\n");
        peer_send("{\n}\n");
        peer_send("null\n\"str\"\n\n\n");
        peer_send("\xc3\x28 invalid utf-8\n");
        peer_send_len("{\"return\":\0 1}\n", 15);
        peer_fill('x', 100000); /* longer than anything worth keeping while syncing */
        peer_send("\n");
        peer_send("{\"event\": \"SHUTDOWN\"}\n");
        peer_expect_silence(50);
        peer_sendf("\xff{\"return\": %" PRIu64 "}\n", id);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_true(qga_client_buffer_peak(t->c) <= QGA_READ_CHUNK_MIN);
}

static void test_timeout_late_reply(void **state) {
        Reply r1 = {}, r2 = {};
        uint64_t start, id;

        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 200 * USEC_PER_MSEC, 0, &r1), 0);
        peer_sync();
        peer_expect_command_only("guest-ping");
        wait_reply(&r1);
        assert_int_equal(r1.error, -ETIMEDOUT);
        assert_true(r1.done_usec - start >= 200 * USEC_PER_MSEC);
        assert_true(t->connected); /* a slow command is not a lost agent */

        send_ok("guest-info", &r2);
        id = peer_expect_sync(); /* re-synced first */
        /* The agent finishes the first command before it reads the sync. */
        peer_send("{\"return\": \"LATE\"}\n");
        peer_sync_reply(id);
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"RIGHT\"}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "\"RIGHT\"");
}

static void test_timeout_late_reply_while_idle(void **state) {
        Reply r1 = {}, r2 = {};

        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 100 * USEC_PER_MSEC, 0, &r1), 0);
        peer_sync();
        peer_expect_command_only("guest-ping");
        wait_reply(&r1);
        assert_int_equal(r1.error, -ETIMEDOUT);
        peer_send("{\"return\": \"LATE\"}\n");
        drain();

        send_ok("guest-info", &r2);
        peer_sync();
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"RIGHT\"}\n");
        wait_reply(&r2);
        assert_string_equal(r2.json, "\"RIGHT\"");
}

static void test_overlong_line(void **state) {
        Reply r = {}, r2 = {};

        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 60 * USEC_PER_SEC, 0, &r), 0);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_fill('a', QGA_LINE_MAX + 1);
        peer_send("\n");
        wait_reply(&r);
        assert_int_equal(r.error, -EPROTO);
        assert_false(t->connected);
        drain();
        assert_true(qga_client_buffer_peak(t->c) <= QGA_INPUT_BUFFER_MAX);
        assert_true(qga_client_buffer_peak(t->c) > QGA_LINE_MAX); /* it did buffer up to the limit */
        assert_true(qga_client_buffer_capacity(t->c) <= QGA_READ_CHUNK_MIN);

        exchange("guest-info", "{\"return\": \"after\"}\n", &r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "\"after\"");
        assert_true(t->connected);
}

static void test_line_of_max_length(void **state) {
        Reply r = {};
        static const char head[] = "{\"return\":\"", tail[] = "\"}";
        size_t n = QGA_LINE_MAX - (sizeof head - 1) - (sizeof tail - 1);
        uint64_t start;

        r.no_dump = true;
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 60 * USEC_PER_SEC, 0, &r), 0);
        peer_sync();
        peer_expect_command_only("guest-ping");
        start = now_usec(CLOCK_MONOTONIC);
        peer_send(head);
        peer_fill('a', n);
        peer_send(tail);
        peer_send("\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        print_message("line of QGA_LINE_MAX (%u bytes) received and parsed in %" PRIu64 " ms\n", QGA_LINE_MAX,
                      (r.done_usec - start) / 1000);
        assert_true(qga_client_buffer_peak(t->c) <= QGA_INPUT_BUFFER_MAX);
        settle();
        assert_true(qga_client_buffer_capacity(t->c) <= QGA_READ_CHUNK_MIN);
}

typedef struct BigRead {
        const uint8_t *expect;
        size_t size;
        bool eof;
        int parse_result;
        uint64_t parsed_usec;
} BigRead;

static void big_read_hook(QgaClient *c, Reply *r, json_t *result) {
        BigRead *b = r->hook_data;
        _cleanup_free_ uint8_t *buf = malloc(b->size);
        size_t size = 0;
        bool eof = true;

        assert_non_null(buf);
        b->parse_result = qga_file_read_parse(result, buf, b->size, &size, &eof);
        b->parsed_usec = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(size, b->size);
        b->eof = eof;
        assert_memory_equal(buf, b->expect, b->size);
}

/* A full 48 MiB guest-file-read reply: the largest line that matters. */
static void test_big_file_read_reply(void **state) {
        const size_t size = QGA_FILE_READ_CHUNK_MAX;
        _cleanup_free_ uint8_t *data = malloc(size);
        _cleanup_free_ char *b64 = NULL;
        size_t b64_len;
        BigRead b = { .size = size };
        Reply r = { .no_dump = true, .hook = big_read_hook, .hook_data = &b };
        uint64_t start;

        assert_non_null(data);
        for (size_t i = 0; i < size; i++)
                data[i] = (uint8_t) (i * 2654435761U >> 13);
        b.expect = data;
        b64 = malloc(qga_b64_encoded_size(size));
        assert_non_null(b64);
        assert_int_equal(qga_b64_encode(data, size, b64, qga_b64_encoded_size(size), &b64_len), 0);

        assert_int_equal(send_full("guest-file-read", NULL, QGA_REPLY_NORMAL, 60 * USEC_PER_SEC, 0, &r), 0);
        peer_sync();
        peer_expect_command_only("guest-file-read");
        start = now_usec(CLOCK_MONOTONIC);
        peer_sendf("{\"return\": {\"count\": %zu, \"buf-b64\": \"", size);
        peer_send_len(b64, b64_len);
        peer_send("\", \"eof\": false}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_int_equal(b.parse_result, 0);
        assert_false(b.eof);
        print_message("48 MiB guest-file-read reply: framing+JSON %" PRIu64 " ms, base64 decode %" PRIu64 " ms\n",
                      (r.done_usec - start) / 1000, (b.parsed_usec - r.done_usec) / 1000);
        assert_true(qga_client_buffer_peak(t->c) <= QGA_INPUT_BUFFER_MAX);
        settle();
        assert_true(qga_client_buffer_capacity(t->c) <= QGA_READ_CHUNK_MIN);
}

static void file_read_exchange(const char *reply_line, uint8_t *buf, size_t count, Reply *r) {
        json_auto_t *args = NULL;

        in_api = true;
        assert_int_equal(qga_send_file_read(t->c, 7, count, buf, 0, on_reply, r, &r->id), 0);
        in_api = false;
        assert_false(r->done);
        peer_sync();
        args = peer_expect_command("guest-file-read");
        assert_int_equal(json_integer_value(json_object_get(args, "handle")), 7);
        assert_int_equal(json_integer_value(json_object_get(args, "count")), count);
        peer_send(reply_line);
        wait_reply(r);
}

/* qga_send_file_read(): the data lands in the caller's buffer, read straight from the
 * line or, for another shape, through jansson; wrong data is -EBADMSG and costs the
 * channel nothing; malformed JSON is a protocol error as for any command. */
static void test_send_file_read(void **state) {
        uint8_t buf[8];
        Reply r1 = {}, r2 = {}, r3 = {}, r4 = {}, r5 = {}, r6 = {};

        file_read_exchange("{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": false}}\n", buf, 8, &r1);
        assert_int_equal(r1.error, 0);
        assert_string_equal(r1.json, "{\"count\":3,\"eof\":false}");
        assert_memory_equal(buf, "foo", 3);

        file_read_exchange("{\"return\": {\"x\": 1, \"count\": 6, \"buf-b64\": \"YmFyYmF6\", \"eof\": true}}\n", buf, 8,
                           &r2);
        assert_int_equal(r2.error, 0);
        assert_string_equal(r2.json, "{\"count\":6,\"eof\":true}");
        assert_memory_equal(buf, "barbaz", 6);

        file_read_exchange("{\"return\": {\"count\": 4, \"buf-b64\": \"Zm9v\", \"eof\": true}}\n", buf, 8, &r3);
        assert_int_equal(r3.error, -EBADMSG);
        assert_true(qga_client_is_connected(t->c));

        file_read_exchange("{\"return\": {\"count\": 6, \"buf-b64\": \"YmFyYmF6\", \"eof\": true}}\n", buf, 5, &r4);
        assert_int_equal(r4.error, -EBADMSG); /* more than asked for */

        file_read_exchange("{\"error\": {\"class\": \"GenericError\", \"desc\": \"bad handle\"}}\n", buf, 8, &r5);
        assert_int_equal(r5.error, -EREMOTEIO);
        assert_string_equal(r5.desc, "bad handle");

        file_read_exchange("{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}\n", buf, 8, &r6);
        assert_int_equal(r6.error, -EPROTO);

        in_api = true;
        assert_int_equal(qga_send_file_read(t->c, 7, QGA_FILE_READ_CHUNK_MAX + 1, buf, 0, on_reply, &r1, NULL),
                         -EMSGSIZE);
        assert_int_equal(qga_send_file_read(t->c, -1, 3, buf, 0, on_reply, &r1, NULL), -EINVAL);
        in_api = false;
}

/* A full 48 MiB chunk through qga_send_file_read(): decoded from the line buffer, no
 * JSON string; the input buffer holds the line once. */
static void test_big_send_file_read(void **state) {
        const size_t size = QGA_FILE_READ_CHUNK_MAX;
        _cleanup_free_ uint8_t *data = malloc(size), *out = malloc(size);
        _cleanup_free_ char *b64 = NULL;
        size_t b64_len;
        Reply r = { .no_dump = true }, r2 = {};
        uint64_t start;

        assert_non_null(data);
        assert_non_null(out);
        for (size_t i = 0; i < size; i++)
                data[i] = (uint8_t) (i * 2654435761U >> 13);
        b64 = malloc(qga_b64_encoded_size(size));
        assert_non_null(b64);
        assert_int_equal(qga_b64_encode(data, size, b64, qga_b64_encoded_size(size), &b64_len), 0);

        in_api = true;
        assert_int_equal(qga_send_file_read(t->c, 7, size, out, 60 * USEC_PER_SEC, on_reply, &r, &r.id), 0);
        in_api = false;
        peer_sync();
        peer_expect_command_only("guest-file-read");
        start = now_usec(CLOCK_MONOTONIC);
        peer_sendf("{\"return\": {\"count\": %zu, \"buf-b64\": \"", size);
        peer_send_len(b64, b64_len);
        peer_send("\", \"eof\": false}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_memory_equal(out, data, size);
        print_message("48 MiB guest-file-read reply, framing and decoding: %" PRIu64 " ms\n",
                      (r.done_usec - start) / 1000);
        assert_true(qga_client_buffer_peak(t->c) <= QGA_INPUT_BUFFER_MAX);
        settle();
        /* Kept for the next chunk, given back once another command is written. */
        assert_true(qga_client_buffer_capacity(t->c) > QGA_LINE_MAX / 2);
        exchange("guest-ping", "{\"return\": {}}\n", &r2);
        assert_int_equal(r2.error, 0);
        assert_true(qga_client_buffer_capacity(t->c) <= QGA_READ_CHUNK_MIN);
}

static void test_flood_while_idle(void **state) {
        Reply r = {}, r2 = {};
        _cleanup_free_ char *lines = NULL;
        const char *one = "{\"return\": {}}\n";
        size_t n = 100000, l = strlen(one);

        exchange("guest-ping", "{\"return\": {}}\n", &r);
        assert_int_equal(r.error, 0);

        lines = malloc(n * l);
        assert_non_null(lines);
        for (size_t i = 0; i < n; i++)
                memcpy(lines + i * l, one, l);
        peer_send_len(lines, n * l);
        peer_fill('z', 8 * 1024 * 1024); /* one long line without a command to answer */
        peer_send("\n");
        drain();
        /* While nobody waits for a reply, nothing long is buffered. */
        assert_true(qga_client_buffer_peak(t->c) <= QGA_READ_CHUNK_MIN);
        assert_true(qga_client_buffer_capacity(t->c) <= QGA_READ_CHUNK_MIN);
        assert_int_equal(t->connected_changes, 1); /* chatter does not flap AgentConnected */

        exchange("guest-info", "{\"return\": \"still works\"}\n", &r2);
        assert_string_equal(r2.json, "\"still works\"");
}

static void test_disconnect_mid_reply(void **state) {
        Reply r1 = {}, r2 = {}, r3 = {};

        send_ok("guest-ping", &r1);
        send_ok("guest-info", &r2);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {\"a");
        drain();
        t->client_fd = -EBADF;
        peer_close(&t->peer);
        wait_reply(&r1);
        wait_reply(&r2);
        assert_int_equal(r1.error, -ENOTCONN);
        assert_int_equal(r2.error, -ENOTCONN);
        settle();
        assert_false(t->connected);
        assert_int_equal(t->connected_changes, 2);
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 0, 0, &r3), -ENOTCONN);
        assert_int_equal(qga_client_resync(t->c), -ENOTCONN);

        /* The owner attaches a new channel later. */
        attach_new_peer(false);
        exchange("guest-ping", "{\"return\": {}}\n", &r3);
        assert_int_equal(r3.error, 0);
}

static bool printable_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

static void test_error_replies(void **state) {
        static const char *const malformed[] = {
                "{\"error\": {\"class\": 5, \"desc\": \"x\"}}\n",
                "{\"error\": {\"class\": \"X\"}}\n",
                "{\"error\": {\"class\": \"X\", \"desc\": null}}\n",
                "{\"error\": \"boom\"}\n",
                "{\"error\": {\"class\": \"X\", \"desc\": \"y\"}, \"return\": {}}\n",
                "{\"return\": 1, \"return\": 2}\n",
                "{\"event\": \"SHUTDOWN\", \"data\": {}}\n",
                "{}\n",
                "[1]\n",
                "\"x\"\n",
                "42\n",
                "not json\n",
                "{\"return\": {}} trailing\n",
                "\n",
                "{\"error\": {\"class\": \"X\", \"desc\": \"nul\\u0000\"}}\n",
        };
        Reply ok = {}, big = {}, ctl = {};
        Reply bad[ELEMENTSOF(malformed)] = {};
        _cleanup_free_ char *line = NULL;

        exchange("guest-exec", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Guest agent command failed\"}}\n",
                 &ok);
        assert_int_equal(ok.error, -EREMOTEIO);
        assert_string_equal(ok.cls, "GenericError");
        assert_string_equal(ok.desc, "Guest agent command failed");
        assert_true(t->connected);

        for (size_t i = 0; i < ELEMENTSOF(malformed); i++) {
                exchange("guest-info", malformed[i], &bad[i]);
                assert_int_equal(bad[i].error, -EPROTO);
                settle();
                assert_false(t->connected);
        }

        /* A huge desc is truncated. */
        assert_true(asprintf(&line, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"%0*d\"}}\n", 100000, 0) > 0);
        exchange("guest-info", line, &big);
        assert_int_equal(big.error, -EREMOTEIO);
        assert_int_equal(strlen(big.desc), QGA_ERROR_DESC_MAX);
        assert_string_equal(big.desc + QGA_ERROR_DESC_MAX - 3, "...");
        assert_true(t->connected);

        /* Control characters and non-ASCII never reach the caller. */
        exchange("guest-info",
                 "{\"error\": {\"class\": \"Gen\\u001b[31m\\u00e9\", \"desc\": \"a\\u0001b\\u001b[2Jc\\nd\\u00e9e\\tf\\u007f\"}}\n",
                 &ctl);
        assert_int_equal(ctl.error, -EREMOTEIO);
        assert_true(printable_ascii(ctl.cls));
        assert_true(printable_ascii(ctl.desc));
        assert_string_equal(ctl.cls, "Gen?[31m??");
        assert_string_equal(ctl.desc, "a?b?[2Jc?d??e?f?");
}

static void test_presend_fake_reply(void **state) {
        Reply r1 = {}, r2 = {}, r3 = {};
        uint64_t id, id2;

        exchange("guest-ping", "{\"return\": {}}\n", &r1);

        /* Forged while idle: discarded, and it forces a sync. */
        peer_send("{\"return\": \"FAKE\"}\n");
        drain();
        send_ok("guest-info", &r2);
        peer_sync();
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"REAL\"}\n");
        wait_reply(&r2);
        assert_string_equal(r2.json, "\"REAL\"");

        /* Forged right behind the sync reply: that sync is void, another follows. */
        send_ok("guest-osinfo", &r3);
        id = peer_expect_sync();
        peer_sendf("\xff{\"return\": %" PRIu64 "}\n{\"return\": \"FAKE\"}\n", id);
        id2 = peer_expect_sync();
        assert_true(id2 != id);
        peer_sync_reply(id2);
        peer_expect_command_only("guest-osinfo");
        peer_send("{\"return\": \"REAL\"}\n");
        wait_reply(&r3);
        assert_string_equal(r3.json, "\"REAL\"");
}

/* In QGA_SYNC_ON_DEMAND mode a forged line must still never answer a command. */
static void test_presend_fake_reply_on_demand(void **state) {
        static const char fake[] = "{\"return\": \"FAKE\"}\n";
        Reply r1 = {}, r2 = {}, r3 = {}, r4 = {};

        exchange("guest-ping", "{\"return\": {}}\n", &r1);

        /* Read while idle. */
        peer_send(fake);
        drain();
        send_ok("guest-info", &r2);
        peer_sync();
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"REAL\"}\n");
        wait_reply(&r2);
        assert_string_equal(r2.json, "\"REAL\"");

        /* Sitting in the socket, not read yet, when the command is submitted. */
        assert_int_equal(write(t->peer.fd, fake, strlen(fake)), (ssize_t) strlen(fake));
        send_ok("guest-osinfo", &r3);
        peer_sync();
        peer_expect_command_only("guest-osinfo");
        peer_send("{\"return\": \"REAL\"}\n");
        wait_reply(&r3);
        assert_string_equal(r3.json, "\"REAL\"");

        /* Behind a genuine reply, in the same write. */
        send_ok("guest-ping", &r4);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n{\"return\": \"FAKE\"}\n");
        wait_reply(&r4);
        assert_string_equal(r4.json, "{}");
        r4 = (Reply) {};
        send_ok("guest-ping", &r4);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": \"REAL\"}\n");
        wait_reply(&r4);
        assert_string_equal(r4.json, "\"REAL\"");
}

static void test_queue_full(void **state) {
        Reply r[QGA_QUEUE_MAX + 2] = {};

        for (size_t i = 0; i < QGA_QUEUE_MAX + 1; i++)
                send_ok("guest-ping", &r[i]);
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 0, 0, &r[QGA_QUEUE_MAX + 1]), -EBUSY);
        assert_int_equal(qga_client_pending(t->c), QGA_QUEUE_MAX + 1);

        /* The first goes out after its sync; the queue makes room. */
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r[0]);
        assert_int_equal(send_full("guest-ping", NULL, QGA_REPLY_NORMAL, 0, 0, &r[QGA_QUEUE_MAX + 1]), 0);

        /* Freeing fails the rest from within the call. */
        t->c = qga_client_free(t->c);
        t->client_fd = -EBADF;
        for (size_t i = 1; i < QGA_QUEUE_MAX + 2; i++) {
                assert_true(r[i].done);
                assert_int_equal(r[i].error, -ECANCELED);
        }
}

static void test_reply_none(void **state) {
        json_auto_t *args = json_pack("{s:s}", "mode", "powerdown");
        Reply r = {}, r2 = {}, r3 = {};
        uint64_t start;

        assert_int_equal(send_full("guest-shutdown", args, QGA_REPLY_NONE, 0, 0, &r), 0);
        peer_sync();
        peer_expect_command_only("guest-shutdown");
        start = now_usec(CLOCK_MONOTONIC);
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        assert_string_equal(r.json, "{}");
        assert_true(r.done_usec - start >= 90 * USEC_PER_MSEC);

        /* An error within the grace. */
        assert_int_equal(send_full("guest-suspend-ram", NULL, QGA_REPLY_NONE, 0, 0, &r2), 0);
        peer_sync(); /* the agent may be gone: sync first */
        peer_expect_command_only("guest-suspend-ram");
        peer_send("{\"error\": {\"class\": \"GenericError\", \"desc\": \"suspend: not supported\"}}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, -EREMOTEIO);
        assert_string_equal(r2.desc, "suspend: not supported");

        /* The channel goes away during the grace: the guest is shutting down. */
        assert_int_equal(send_full("guest-shutdown", NULL, QGA_REPLY_NONE, 0, 0, &r3), 0);
        peer_sync();
        peer_expect_command_only("guest-shutdown");
        t->client_fd = -EBADF;
        peer_close(&t->peer);
        wait_reply(&r3);
        assert_int_equal(r3.error, 0);
}

static void test_max_reply_bytes(void **state) {
        Reply r1 = {}, r2 = {}, r3 = {}, r4 = {};
        _cleanup_free_ char *line = NULL;

        /* Complete in one read. */
        assert_int_equal(send_full("guest-get-osinfo", NULL, QGA_REPLY_NORMAL, 0, 1000, &r1), 0);
        peer_sync();
        peer_expect_command_only("guest-get-osinfo");
        assert_true(asprintf(&line, "{\"return\": \"%0*d\"}\n", 5000, 0) > 0);
        peer_send(line);
        wait_reply(&r1);
        assert_int_equal(r1.error, -EFBIG);

        /* Arriving over many reads: refused early, the rest not buffered. */
        assert_int_equal(send_full("guest-get-osinfo", NULL, QGA_REPLY_NORMAL, 0, 64 * 1024, &r2), 0);
        peer_sync();
        peer_expect_command_only("guest-get-osinfo");
        peer_send("{\"return\": \"");
        peer_fill('q', 16 * 1024 * 1024);
        peer_send("\"}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, -EFBIG);
        drain();
        assert_true(qga_client_buffer_peak(t->c) <= 64 * 1024 + QGA_READ_CHUNK_MAX);

        /* Exactly at the limit is fine. */
        free(line);
        assert_true(asprintf(&line, "{\"return\": \"%0*d\"}\n", 1000 - 14, 0) > 0);
        assert_int_equal(strlen(line), 1001);
        assert_int_equal(send_full("guest-get-osinfo", NULL, QGA_REPLY_NORMAL, 0, 1000, &r3), 0);
        peer_sync();
        peer_expect_command_only("guest-get-osinfo");
        peer_send(line);
        wait_reply(&r3);
        assert_int_equal(r3.error, 0);

        exchange("guest-ping", "{\"return\": {}}\n", &r4);
        assert_int_equal(r4.error, 0);
}

static void test_too_many_values(void **state) {
        Reply r1 = {}, r2 = {};
        size_t n = 300000;
        _cleanup_free_ char *line = malloc(n * 3 + 32);
        char *p = line;

        assert_non_null(line);
        p = stpcpy(p, "{\"return\": [");
        for (size_t i = 0; i < n; i++)
                p = stpcpy(p, i ? ",{}" : "{}");
        p = stpcpy(p, "]}\n");

        assert_int_equal(send_full("guest-get-devices", NULL, QGA_REPLY_NORMAL, 0, 0, &r1), 0);
        peer_sync();
        peer_expect_command_only("guest-get-devices");
        peer_send(line);
        wait_reply(&r1);
        assert_int_equal(r1.error, -EFBIG);

        /* Commas inside strings do not count. */
        free(line);
        line = malloc(n + 64);
        assert_non_null(line);
        p = stpcpy(line, "{\"return\": [\"");
        memset(p, ',', n);
        p += n;
        p = stpcpy(p, "\\\\\", \"\\\",\"]}\n");
        exchange("guest-get-devices", line, &r2);
        assert_int_equal(r2.error, 0);
}

static void test_cancel(void **state) {
        Reply r1 = {}, r2 = {}, r3 = {};
        uint64_t id;

        send_ok("guest-ping", &r1);
        send_ok("guest-info", &r2);
        send_ok("guest-get-osinfo", &r3);

        /* Queued: the callback runs from within qga_cancel(). */
        assert_int_equal(qga_cancel(t->c, r3.id), 0);
        assert_true(r3.done);
        assert_int_equal(r3.error, -ECANCELED);
        assert_int_equal(qga_cancel(t->c, r3.id), -ENOENT);
        assert_int_equal(qga_cancel(t->c, 999999), -ENOENT);

        /* In flight: its late reply must not reach the next command. */
        peer_sync();
        peer_expect_command_only("guest-ping");
        assert_int_equal(qga_cancel(t->c, r1.id), 0);
        assert_true(r1.done);
        assert_int_equal(r1.error, -ECANCELED);

        id = peer_expect_sync();
        peer_send("{\"return\": \"LATE\"}\n");
        peer_sync_reply(id);
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"RIGHT\"}\n");
        wait_reply(&r2);
        assert_string_equal(r2.json, "\"RIGHT\"");
}

static void test_cancel_completed(void **state) {
        Reply r = {};

        send_ok("guest-ping", &r);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        /* Read, but the callback has not run yet: cancel still wins, exactly once. */
        RUN_UNTIL(qga_client_pending(t->c) == 0, 5000);
        if (!r.done) {
                assert_int_equal(qga_cancel(t->c, r.id), 0);
                assert_int_equal(r.error, -ECANCELED);
        }
        settle();
        assert_true(r.done);
}

static void free_hook(QgaClient *c, Reply *r, json_t *result) {
        t->c = qga_client_free(c);
        t->client_fd = -EBADF;
}

static void test_free_from_callback(void **state) {
        Reply r1 = { .hook = free_hook }, r2 = {}, r3 = {};

        send_ok("guest-ping", &r1);
        send_ok("guest-info", &r2);
        send_ok("guest-get-osinfo", &r3);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r1);
        assert_int_equal(r1.error, 0);
        assert_null(t->c);
        assert_true(r2.done);
        assert_true(r3.done);
        assert_int_equal(r2.error, -ECANCELED);
        assert_int_equal(r3.error, -ECANCELED);
        settle();
}

static void test_free_from_connected_callback(void **state) {
        Reply r = {};

        t->free_on_connected = true;
        send_ok("guest-ping", &r);
        peer_sync();
        RUN_UNTIL(t->c == NULL, 5000);
        t->client_fd = -EBADF;
        assert_true(r.done);
        assert_int_equal(r.error, -ECANCELED);
        settle();
}

static void cancel_other_hook(QgaClient *c, Reply *r, json_t *result) {
        Reply *other = r->hook_data;

        /* Its callback runs from within qga_cancel(), as documented. */
        assert_int_equal(qga_cancel(c, other->id), 0);
        assert_true(other->done);
}

static void send_again_hook(QgaClient *c, Reply *r, json_t *result) {
        Reply *next = r->hook_data;

        in_api = true;
        assert_int_equal(qga_send(c, "guest-info", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, next, &next->id), 0);
        in_api = false;
        assert_false(next->done);
}

static void detach_hook(QgaClient *c, Reply *r, json_t *result) {
        in_api = true;
        qga_client_detach(c);
        in_api = false;
        t->client_fd = -EBADF;
}

static void test_reentrancy(void **state) {
        Reply r2 = {}, r3 = {}, r4 = {}, r5 = {}, r6 = {};
        Reply r1 = { .hook = cancel_other_hook, .hook_data = &r2 };
        Reply r_send = { .hook = send_again_hook, .hook_data = &r4 };
        Reply r_detach = { .hook = detach_hook };

        /* Cancel another command from a callback. */
        send_ok("guest-ping", &r1);
        send_ok("guest-info", &r2);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r1);
        assert_int_equal(r2.error, -ECANCELED);

        /* Send from a callback. */
        send_ok("guest-ping", &r_send);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r_send);
        peer_sync();
        peer_expect_command_only("guest-info");
        peer_send("{\"return\": \"from callback\"}\n");
        wait_reply(&r4);
        assert_string_equal(r4.json, "\"from callback\"");

        /* Detach from a callback: the queued command fails later, not inside. */
        send_ok("guest-ping", &r_detach);
        send_ok("guest-info", &r3);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r_detach);
        wait_reply(&r3);
        assert_int_equal(r3.error, -ENOTCONN);
        peer_close(&t->peer);

        attach_new_peer(false);
        exchange("guest-ping", "{\"return\": {}}\n", &r5);
        assert_int_equal(r5.error, 0);
        exchange("guest-ping", "{\"return\": {}}\n", &r6);
        assert_int_equal(r6.error, 0);
}

static void test_sync_timeout(void **state) {
        Reply r0 = {}, r1 = {}, r2 = {};
        uint64_t id1, id2, start;

        exchange("guest-ping", "{\"return\": {}}\n", &r0);
        assert_true(t->connected);

        assert_int_equal(qga_client_set_timeouts(t->c, 150 * USEC_PER_MSEC, 0), 0);
        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(send_full("guest-fsfreeze-status", NULL, QGA_REPLY_NORMAL, 30 * USEC_PER_SEC, 0, &r1), 0);
        id1 = peer_expect_sync();
        wait_reply(&r1);
        assert_int_equal(r1.error, -ETIMEDOUT);
        assert_true(r1.done_usec - start < 5 * USEC_PER_SEC); /* the sync timeout, not the command's */
        settle();
        assert_false(t->connected);
        assert_int_equal(t->connected_changes, 2);

        assert_int_equal(qga_client_set_timeouts(t->c, 2 * USEC_PER_SEC, 0), 0);
        send_ok("guest-ping", &r2);
        id2 = peer_expect_sync();
        assert_true(id2 != id1);
        peer_sync_reply(id1); /* too late: ignored */
        peer_expect_silence(50);
        peer_sync_reply(id2);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, 0);
        assert_true(t->connected);
}

/* The agent restarted (VSERPORT_CHANGE closed, then open): the owner marked it
 * gone and re-syncs. The new agent's answer must be reported, although the
 * client itself never saw the old one go. */
static void test_resync_reports_reconnect(void **state) {
        uint64_t id;

        peer_close(&t->peer);
        attach_new_peer(true);
        peer_sync();
        RUN_UNTIL(t->connected, 5000);
        assert_int_equal(t->connected_changes, 1);

        assert_int_equal(qga_client_resync(t->c), 0);
        assert_false(qga_client_is_connected(t->c));
        id = peer_expect_sync();
        RUN_UNTIL(!t->connected, 5000);
        assert_int_equal(t->connected_changes, 2);
        peer_sync_reply(id);
        RUN_UNTIL(t->connected, 5000);
        assert_int_equal(t->connected_changes, 3);
        assert_true(qga_client_is_connected(t->c));
}

static void test_attach_sync_now_and_resync(void **state) {
        Reply r = {}, r2 = {}, ra = {};
        uint64_t id1, id2, id3;

        peer_close(&t->peer);
        attach_new_peer(true);
        id1 = peer_expect_sync();
        peer_sync_reply(id1);
        RUN_UNTIL(t->connected, 5000);
        assert_int_equal(t->connected_changes, 1);

        assert_int_equal(qga_client_resync(t->c), 0);
        id2 = peer_expect_sync();
        assert_true(id2 != id1);
        /* Re-sync again while that one is under way: a fresh id, the old one is void. */
        assert_int_equal(qga_client_resync(t->c), 0);
        id3 = peer_expect_sync();
        assert_true(id3 != id2);
        peer_sync_reply(id2);
        send_ok("guest-ping", &r);
        peer_expect_silence(50);
        peer_sync_reply(id3);
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);

        /* Re-sync asked for while a command is in flight: it follows the reply. */
        r = (Reply) {};
        send_ok("guest-ping", &r);
        peer_sync();
        peer_expect_command_only("guest-ping");
        assert_int_equal(qga_client_resync(t->c), 0);
        peer_expect_silence(30);
        peer_send("{\"return\": {}}\n");
        wait_reply(&r);
        assert_int_equal(r.error, 0);
        peer_sync();
        drain();

        /* A new channel while a command is in flight: it fails, the queued one moves over.
         * (That sync is unused, so the command goes out without another.) */
        send_ok("guest-info", &ra);
        send_ok("guest-get-osinfo", &r2);
        peer_expect_command_only("guest-info");
        peer_close(&t->peer);
        attach_new_peer(false);
        wait_reply(&ra);
        assert_int_equal(ra.error, -ENOTCONN);
        peer_sync();
        peer_expect_command_only("guest-get-osinfo");
        peer_send("{\"return\": \"moved\"}\n");
        wait_reply(&r2);
        assert_string_equal(r2.json, "\"moved\"");
}

static void test_abandoned_partial_write(void **state) {
        _cleanup_free_ uint8_t *data = calloc(1, 8 * 1024 * 1024);
        Reply r = {}, r2 = {};

        assert_non_null(data);
        /* The peer reads nothing: the command cannot be written completely. */
        (void) sd_event_source_set_enabled(t->peer.io, SD_EVENT_OFF);
        assert_int_equal(qga_send_file_write(t->c, 1000, data, 8 * 1024 * 1024, 1 * USEC_PER_SEC, on_reply, &r,
                                             &r.id),
                         0);
        /* The sync needs an answer first; give it one by hand. */
        {
                char buf[256];
                ssize_t n;
                uint64_t id;
                char *p;

                RUN_UNTIL(recv(t->peer.fd, buf, sizeof buf - 1, MSG_PEEK | MSG_DONTWAIT) > 0, 5000);
                run_for(20);
                n = read(t->peer.fd, buf, sizeof buf - 1);
                assert_true(n > 0);
                buf[n] = 0;
                assert_true((unsigned char) buf[0] == 0xFF);
                p = strstr(buf, "\"id\":");
                assert_non_null(p);
                id = strtoull(p + 5, NULL, 10);
                peer_sync_reply(id);
        }
        wait_reply(&r);
        assert_int_equal(r.error, -ETIMEDOUT);

        /* The agent now reads a partial command, then 0xFF and a sync: the sentinel
         * makes it drop the partial one. */
        (void) sd_event_source_set_enabled(t->peer.io, SD_EVENT_ON);
        send_ok("guest-ping", &r2);
        peer_sync();
        peer_expect_command_only("guest-ping");
        peer_send("{\"return\": {}}\n");
        wait_reply(&r2);
        assert_int_equal(r2.error, 0);
}

static void test_file_write(void **state) {
        const size_t size = 100000;
        _cleanup_free_ uint8_t *data = malloc(size), *back = malloc(size);
        json_auto_t *args = NULL;
        json_t *b64;
        size_t n;
        Reply r = {};

        assert_non_null(data);
        assert_non_null(back);
        for (size_t i = 0; i < size; i++)
                data[i] = (uint8_t) (i * 7 + 3);
        assert_int_equal(qga_send_file_write(t->c, 1234, data, size, 0, on_reply, &r, &r.id), 0);
        peer_sync();
        args = peer_expect_command("guest-file-write");
        assert_int_equal(json_integer_value(json_object_get(args, "handle")), 1234);
        assert_int_equal(json_integer_value(json_object_get(args, "count")), size);
        b64 = json_object_get(args, "buf-b64");
        assert_true(json_is_string(b64));
        assert_int_equal(qga_b64_decode(json_string_value(b64), json_string_length(b64), back, size, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(back, data, size);
        peer_send("{\"return\": {\"count\": 100000, \"eof\": false}}\n");
        wait_reply(&r);
        assert_string_equal(r.json, "{\"count\":100000,\"eof\":false}");
}

/* The line written piece by piece is exactly qga_file_write_line()'s, whatever the size
 * around the piece boundaries (48 KiB of data, 64 KiB of base64). */
static void test_file_write_pieces(void **state) {
        static const size_t sizes[] = { 0, 1, 2, 3, 49151, 49152, 49153, 2 * 49152 + 1, 2 * 49152 + 2, 1000000 };
        _cleanup_free_ uint8_t *data = malloc(1000000);

        assert_non_null(data);
        for (size_t i = 0; i < 1000000; i++)
                data[i] = (uint8_t) (i * 2654435761U >> 11);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_free_ char *want = NULL, *got = NULL;
                size_t want_len;
                bool ff;
                Reply r = {};

                assert_int_equal(qga_file_write_line(77, data, sizes[i], &want, &want_len), 0);
                assert_int_equal(qga_send_file_write(t->c, 77, data, sizes[i], 0, on_reply, &r, &r.id), 0);
                peer_sync();
                got = peer_line(&ff);
                assert_false(ff);
                assert_int_equal(strlen(got) + 1, want_len);
                assert_memory_equal(got, want, want_len - 1);
                peer_sendf("{\"return\": {\"count\": %zu, \"eof\": false}}\n", sizes[i]);
                wait_reply(&r);
                assert_int_equal(r.error, 0);
        }
}

static void test_send_errors(void **state) {
        json_auto_t *num = json_integer(1);
        Reply r = {};
        char c = 0;

        assert_int_equal(qga_send(t->c, NULL, NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send(t->c, "", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send(t->c, "guest-ping", num, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send(t->c, "guest-ping", NULL, (QgaReplyMode) 7, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send(t->c, "\xff\xfe", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send(t->c, "guest-sync", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EPERM);
        assert_int_equal(qga_send(t->c, "guest-sync-delimited", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL),
                         -EPERM);
        assert_int_equal(qga_send_file_write(t->c, -1, &c, 1, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send_file_write(t->c, 1, NULL, 1, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_send_file_write(t->c, 1, &c, QGA_FILE_WRITE_CHUNK_MAX + 1, 0, on_reply, &r, NULL),
                         -EMSGSIZE);
        assert_int_equal(qga_cancel(NULL, 1), -EINVAL);
        assert_int_equal(qga_client_set_sync_mode(t->c, _QGA_SYNC_MODE_MAX), -EINVAL);
        assert_int_equal(qga_client_attach(t->c, -1, false), -EINVAL);
        assert_null(qga_client_free(NULL));
        assert_false(qga_client_is_connected(NULL));

        qga_client_detach(t->c);
        t->client_fd = -EBADF;
        assert_int_equal(qga_send(t->c, "guest-ping", NULL, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -ENOTCONN);
        settle();
        assert_false(r.done);
}

/* qemu-ga parses with QEMU's parser: what it would read differently never leaves. */
static void test_send_wire_checks(void **state) {
        static const char *const bad[] = { "\xef\xbf\xbf", "\xef\xbf\xbe", "\xef\xb7\x90", "\xf3\xbf\xbf\xbf" };
        json_auto_t *ok = json_integer(1), *deep = NULL;
        Reply r = {};
        uint64_t id;

        /* Arguments nested 63 deep make a 64-deep line: fine; one more is refused. */
        for (unsigned i = 1; i < JSON_WIRE_DEPTH_MAX - 1; i++) {
                json_t *a = json_array();
                assert_int_equal(json_array_append_new(a, TAKE_PTR(ok)), 0);
                ok = a;
        }
        json_auto_t *args_ok = json_pack("{s:O}", "x", ok);
        json_auto_t *wrap = json_array();
        assert_int_equal(json_array_append(wrap, ok), 0);
        deep = json_pack("{s:O}", "x", wrap);
        assert_int_equal(qga_send(t->c, "guest-exec", deep, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL), -EINVAL);
        assert_int_equal(qga_client_pending(t->c), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_auto_t *v = json_pack("{s:s}", "path", bad[i]);
                assert_non_null(v);
                assert_int_equal(qga_send(t->c, "guest-file-open", v, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, NULL),
                                 -EINVAL);
        }
        assert_int_equal(qga_client_pending(t->c), 0);
        assert_int_equal(qga_send(t->c, "guest-ping", args_ok, QGA_REPLY_NORMAL, 0, 0, on_reply, &r, &id), 0);
        assert_int_equal(qga_client_pending(t->c), 1);
        assert_int_equal(qga_cancel(t->c, id), 0);
        assert_int_equal(r.error, -ECANCELED);
}

/* ---- base64 and file helpers ---- */

static void test_b64_vectors(void **state) {
        static const struct {
                const char *plain, *b64;
        } v[] = {
                { "", "" },           { "f", "Zg==" },         { "fo", "Zm8=" },         { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
        };
        uint8_t all[256], back[256];
        char out[512];
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                size_t pl = strlen(v[i].plain), bl = strlen(v[i].b64);
                char dec[16];

                assert_int_equal(qga_b64_encoded_size(pl), bl);
                assert_int_equal(qga_b64_encode(v[i].plain, pl, out, sizeof out, &n), 0);
                assert_int_equal(n, bl);
                assert_memory_equal(out, v[i].b64, bl);
                assert_int_equal(qga_b64_decode(v[i].b64, bl, dec, sizeof dec, &n), 0);
                assert_int_equal(n, pl);
                assert_memory_equal(dec, v[i].plain, pl);
                /* The output buffer may be exactly as large as needed. */
                assert_int_equal(qga_b64_decode(v[i].b64, bl, dec, pl, &n), 0);
                if (pl > 0)
                        assert_int_equal(qga_b64_decode(v[i].b64, bl, dec, pl - 1, &n), -ENOBUFS);
                if (bl > 0)
                        assert_int_equal(qga_b64_encode(v[i].plain, pl, out, bl - 1, &n), -ENOBUFS);
        }

        for (size_t i = 0; i < 256; i++)
                all[i] = (uint8_t) i;
        assert_int_equal(qga_b64_encode(all, sizeof all, out, sizeof out, &n), 0);
        assert_int_equal(n, 344);
        assert_memory_equal(out, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v", 64);
        assert_memory_equal(out + 320, "8PHy8/T19vf4+fr7/P3+/w==", 24);
        assert_int_equal(qga_b64_decode(out, n, back, sizeof back, &n), 0);
        assert_int_equal(n, 256);
        assert_memory_equal(back, all, 256);
        assert_int_equal(qga_b64_decoded_max(8), 6);
        assert_int_equal(qga_b64_encoded_size(SIZE_MAX), SIZE_MAX);
}

static void test_b64_invalid(void **state) {
        static const char *const bad[] = {
                "Zg=",  "Z",        "Zg=a",     "Z===",     "====",     "Zh==",     "Zm9=",
                "Zm9v\n", " Zm9", "Zm9 ", "Zm-v", "Zm_v", "Zg==Zg==", "Zm=v", "Zm9\xff", "Zm9vYg==\n",
                "Zm9vY===",
        };
        char out[64];
        size_t n = 12345;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(qga_b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), -EINVAL);
        assert_int_equal(qga_b64_decode("Zm9\0", 4, out, sizeof out, &n), -EINVAL);
        assert_int_equal(n, 12345); /* untouched on failure */
}

static void test_b64_roundtrip(void **state) {
        uint64_t x = 0x243F6A8885A308D3ULL;
        static uint8_t in[1 << 20], back[1 << 20];
        static char enc[(1 << 20) / 3 * 4 + 8];

        for (int iter = 0; iter < 300; iter++) {
                size_t size = iter < 299 ? (size_t) iter * 7 % 1000 : sizeof in;
                size_t n, m;

                for (size_t i = 0; i < size; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        in[i] = (uint8_t) x;
                }
                assert_int_equal(qga_b64_encode(in, size, enc, sizeof enc, &n), 0);
                assert_int_equal(n, qga_b64_encoded_size(size));
                assert_int_equal(qga_b64_decode(enc, n, back, sizeof back, &m), 0);
                assert_int_equal(m, size);
                assert_memory_equal(back, in, size);

                /* Streaming: pieces cut at multiples of four characters. */
                if (n > 8) {
                        size_t cut = (n / 2) & ~(size_t) 3, a, b;
                        assert_int_equal(qga_b64_decode(enc, cut, back, sizeof back, &a), 0);
                        assert_int_equal(qga_b64_decode(enc + cut, n - cut, back + a, sizeof back - a, &b), 0);
                        assert_int_equal(a + b, size);
                        assert_memory_equal(back, in, size);
                }
        }
}

static void test_file_read_parse(void **state) {
        static const struct {
                const char *json;
                int ret;
        } v[] = {
                { "{\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}", 0 },
                { "{\"count\": 0, \"buf-b64\": \"\", \"eof\": true}", 0 },
                { "{\"count\": 4, \"buf-b64\": \"Zm9v\", \"eof\": true}", -EPROTO },
                { "{\"count\": 2, \"buf-b64\": \"Zm9v\", \"eof\": true}", -EPROTO },
                { "{\"count\": -1, \"buf-b64\": \"Zm9v\", \"eof\": true}", -EPROTO },
                { "{\"count\": 3, \"buf-b64\": \"Zm9\", \"eof\": true}", -EPROTO },
                { "{\"count\": 3, \"buf-b64\": 5, \"eof\": true}", -EPROTO },
                { "{\"count\": \"3\", \"buf-b64\": \"Zm9v\", \"eof\": true}", -EPROTO },
                { "{\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": 1}", -EPROTO },
                { "{\"count\": 3, \"buf-b64\": \"Zm9v\"}", -EPROTO },
                { "{\"count\": 6, \"buf-b64\": \"Zm9vYmFy\", \"eof\": false}", -EPROTO }, /* more than asked */
                { "[]", -EPROTO },
        };
        uint8_t buf[5];

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                json_auto_t *j = json_loads(v[i].json, JSON_DECODE_ANY, NULL);
                size_t size = 99;
                bool eof = false;

                assert_non_null(j);
                assert_int_equal(qga_file_read_parse(j, buf, sizeof buf, &size, &eof), v[i].ret);
                if (v[i].ret == 0)
                        assert_true(eof);
        }
}

/* The direct reader of a guest-file-read reply line: it takes the shape qemu-ga writes,
 * and when it takes a line, the path through jansson and qga_file_read_parse() gives the
 * same; everything else (1 == 0 below) is left to that path. */
static void test_file_read_scan(void **state) {
        static const struct {
                const char *line;
                int scan; /* 1: read directly */
                int slow; /* the path through jansson: 0 data, -EPROTO malformed data, 1 not a return */
        } v[] = {
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 1, 0 },
                { "{\"return\":{\"count\":3,\"buf-b64\":\"Zm9v\",\"eof\":false}}", 1, 0 },
                { "{\"return\": {\"count\": 3, \"eof\": true, \"buf-b64\": \"Zm9v\"}}", 1, 0 },
                { "{\"return\": {\"buf-b64\": \"Zm9v\", \"count\": 3, \"eof\": true}}", 1, 0 },
                { "{\"return\": {\"buf-b64\": \"Zm9v\", \"eof\": true, \"count\": 3}}", 1, 0 },
                { "{\"return\": {\"eof\": true, \"count\": 3, \"buf-b64\": \"Zm9v\"}}", 1, 0 },
                { "{\"return\": {\"eof\": true, \"buf-b64\": \"Zm9v\", \"count\": 3}}", 1, 0 },
                { " \t{ \"return\" :\r{ \"count\" : 2 , \"buf-b64\" : \"Zm8=\" , \"eof\" : false } }\r ", 1, 0 },
                { "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": true}}", 1, 0 },
                /* valid, another shape: left to jansson, which takes it */
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true, \"x\": [1]}}", 0, 0 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9\\u0076\", \"eof\": true}}", 0, 0 },
                { "{\"ret\\u0075rn\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, 0 },
                /* well-formed, wrong data */
                { "{\"return\": {\"count\": 4, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 2, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": -3, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 3.0, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 2, \"buf-b64\": \"Zm9=\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\\n\", \"eof\": true}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": null}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\"}}", 0, -EPROTO },
                { "{\"return\": {\"count\": 6, \"buf-b64\": \"Zm9vYmFy\", \"eof\": false}}", 0, -EPROTO },
                { "{\"return\": {}}", 0, -EPROTO },
                /* not JSON, or not a single return */
                { "{\"return\": {\"count\": 3, \"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, 1 },
                { "{\"return\": {\"count\": 03, \"buf-b64\": \"Zm9v\", \"eof\": true}}", 0, 1 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}} x", 0, 1 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}", 0, 1 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}, \"id\": 1}", 0, 1 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\x01\", \"eof\": true}}", 0, 1 },
                { "{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": truex}}", 0, 1 },
                { "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}", 0, 1 },
                { "", 0, 1 },
        };
        uint8_t a[5], b[5];

        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                size_t len = strlen(v[i].line), na = 99, nb = 77;
                bool ea = false, eb = false;
                json_auto_t *j = json_loadb(v[i].line, len, JSON_REJECT_DUPLICATES, NULL);
                json_t *ret = json_is_object(j) && json_object_size(j) == 1 ? json_object_get(j, "return") : NULL;
                int slow = ret ? qga_file_read_parse(ret, b, sizeof b, &nb, &eb) : 1;

                print_message("%zu: %s\n", i, v[i].line);
                assert_int_equal(slow, v[i].slow);
                assert_int_equal(qga_file_read_scan(v[i].line, len, a, sizeof a, &na, &ea), v[i].scan);
                if (v[i].scan == 1) {
                        assert_int_equal(na, nb);
                        assert_int_equal(ea, eb);
                        assert_memory_equal(a, b, na);
                }
        }
        /* Not more than asked for, whatever the count says. */
        assert_int_equal(qga_file_read_scan("{\"return\": {\"count\": 3, \"buf-b64\": \"Zm9v\", \"eof\": true}}",
                                            58, a, 2, NULL, NULL), 0);
}

static void test_file_write_line(void **state) {
        _cleanup_free_ char *line = NULL;
        json_auto_t *v = NULL;
        size_t len;

        assert_int_equal(qga_file_write_line(7, "foobar", 6, &line, &len), 0);
        assert_int_equal(strlen(line), len);
        assert_true(line[len - 1] == '\n');
        v = json_loadb(line, len, 0, NULL);
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "execute")), "guest-file-write");
        assert_string_equal(json_string_value(json_object_get(json_object_get(v, "arguments"), "buf-b64")),
                            "Zm9vYmFy");
        assert_int_equal(qga_file_write_line(7, "x", QGA_FILE_WRITE_CHUNK_MAX + 1, &line, &len), -EMSGSIZE);
}

/* ---- the real qemu-ga on the host ---- */

static const char *find_qemu_ga(void) {
        static const char *const paths[] = { "/usr/sbin/qemu-ga", "/usr/bin/qemu-ga", "/usr/local/bin/qemu-ga" };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (access(paths[i], X_OK) == 0)
                        return paths[i];
        return NULL;
}

/* Every RPC this qemu-ga knows except the harmless ones we use: the agent runs
 * on the host, as root. */
static char *qemu_ga_blocklist(const char *qga) {
        static const char *const allowed[] = {
                "guest-sync", "guest-sync-delimited", "guest-ping", "guest-info", "guest-get-osinfo",
                "guest-file-open", "guest-file-read", "guest-file-close",
        };
        _cleanup_free_ char *cmd = NULL, *list = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char name[256];
        size_t len = 0;

        assert_true(asprintf(&cmd, "%s -b help 2>/dev/null", qga) > 0);
        f = popen(cmd, "r");
        assert_non_null(f);
        list = calloc(1, 1);
        while (fscanf(f, "%255s", name) == 1) {
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                        ok = ok || streq(name, allowed[i]);
                if (ok)
                        continue;
                list = realloc(list, len + strlen(name) + 2);
                assert_non_null(list);
                len += (size_t) sprintf(list + len, "%s%s", len ? "," : "", name);
        }
        assert_int_equal(pclose(TAKE_PTR(f)), 0);
        assert_non_null(strstr(list, "guest-shutdown"));
        assert_non_null(strstr(list, "guest-exec"));
        return TAKE_PTR(list);
}

static uint64_t real_pings(unsigned n) {
        uint64_t start = now_usec(CLOCK_MONOTONIC);

        for (unsigned i = 0; i < n; i++) {
                Reply r = {};
                send_ok("guest-ping", &r);
                wait_reply(&r);
                assert_int_equal(r.error, 0);
        }
        return (now_usec(CLOCK_MONOTONIC) - start) / n;
}

static void test_real_qemu_ga(void **state) {
        const char *qga = find_qemu_ga();
        char dir[] = "/tmp/test-qga-XXXXXX";
        _cleanup_free_ char *sock = NULL, *pidfile = NULL, *logfile = NULL, *blocked = NULL, *file = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Reply ping = {}, info = {}, os = {}, exec = {}, op = {}, rd = {}, cl = {};
        json_auto_t *open_args = NULL, *read_args = NULL, *close_args = NULL;
        /* QGA_TEST_BIG=1: a full 48 MiB chunk, to time the whole path. */
        const size_t fsize = getenv("QGA_TEST_BIG") ? QGA_FILE_READ_CHUNK_MAX : 4 * 1024 * 1024 + 5;
        _cleanup_free_ uint8_t *fdata = malloc(fsize);
        BigRead b = { .size = fsize };
        uint64_t each, on_demand, start;
        json_auto_t *info_v = NULL;
        pid_t pid, parent = getpid();
        int fd = -EBADF, status;

        if (!qga) {
                print_message("qemu-ga not installed, skipping\n");
                skip();
        }
        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&sock, "%s/qga.sock", dir) > 0);
        assert_true(asprintf(&pidfile, "%s/qga.pid", dir) > 0);
        assert_true(asprintf(&logfile, "%s/qga.log", dir) > 0);
        assert_true(asprintf(&file, "%s/data.bin", dir) > 0);
        blocked = qemu_ga_blocklist(qga);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                execl(qga, qga, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", pidfile, "-l", logfile, "-b",
                      blocked, (char *) NULL);
                _exit(127);
        }

        /* The socket appears once qemu-ga listens. */
        strncpy(sa.sun_path, sock, sizeof sa.sun_path - 1);
        for (int i = 0; i < 500; i++) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(fd >= 0);
                if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0)
                        break;
                fd = safe_close(fd);
                assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still running */
                usleep(10000);
        }
        assert_true(fd >= 0);

        peer_close(&t->peer);
        t->client_fd = fd;
        assert_int_equal(qga_client_attach(t->c, fd, true), 0);
        RUN_UNTIL(t->connected, 10000);

        send_ok("guest-ping", &ping);
        wait_reply(&ping);
        assert_int_equal(ping.error, 0);
        assert_string_equal(ping.json, "{}");

        send_ok("guest-info", &info);
        wait_reply(&info);
        assert_int_equal(info.error, 0);
        info_v = json_loads(info.json, 0, NULL);
        assert_true(json_is_string(json_object_get(info_v, "version")));
        assert_true(json_is_array(json_object_get(info_v, "supported_commands")));

        send_ok("guest-get-osinfo", &os);
        wait_reply(&os);
        assert_int_equal(os.error, 0);
        assert_non_null(strstr(os.json, "\"kernel-release\""));

        send_ok("guest-exec", &exec);
        wait_reply(&exec);
        assert_int_equal(exec.error, -EREMOTEIO);
        assert_string_equal(exec.cls, "CommandNotFound");
        print_message("qemu-ga %s: blocked command: %s: %s\n", json_string_value(json_object_get(info_v, "version")),
                      exec.cls, exec.desc);

        /* A few MiB through guest-file-read, checked end to end. */
        {
                _cleanup_close_ int ffd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                assert_non_null(fdata);
                for (size_t i = 0; i < fsize; i++)
                        fdata[i] = (uint8_t) (i * 2654435761U >> 11);
                assert_true(ffd >= 0);
                assert_int_equal(write(ffd, fdata, fsize), (ssize_t) fsize);
        }
        b.expect = fdata;
        open_args = json_pack("{s:s, s:s}", "path", file, "mode", "r");
        assert_int_equal(send_full("guest-file-open", open_args, QGA_REPLY_NORMAL, 0, 0, &op), 0);
        wait_reply(&op);
        assert_int_equal(op.error, 0);
        read_args = json_pack("{s:I, s:I}", "handle", (json_int_t) strtoll(op.json, NULL, 10), "count",
                              (json_int_t) fsize);
        rd.no_dump = true;
        rd.hook = big_read_hook;
        rd.hook_data = &b;
        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(send_full("guest-file-read", read_args, QGA_REPLY_NORMAL, 60 * USEC_PER_SEC, 0, &rd), 0);
        wait_reply(&rd);
        assert_int_equal(rd.error, 0);
        assert_int_equal(b.parse_result, 0);
        print_message("real qemu-ga, guest-file-read of %zu bytes: %" PRIu64 " ms to the callback, %" PRIu64
                      " ms decoded\n",
                      fsize, (rd.done_usec - start) / 1000, (b.parsed_usec - start) / 1000);
        close_args = json_pack("{s:I}", "handle", (json_int_t) strtoll(op.json, NULL, 10));
        assert_int_equal(send_full("guest-file-close", close_args, QGA_REPLY_NORMAL, 0, 0, &cl), 0);
        wait_reply(&cl);
        assert_int_equal(cl.error, 0);

        /* What a sync per command costs. */
        assert_int_equal(qga_client_set_sync_mode(t->c, QGA_SYNC_EACH_COMMAND), 0);
        each = real_pings(300);
        assert_int_equal(qga_client_set_sync_mode(t->c, QGA_SYNC_ON_DEMAND), 0);
        on_demand = real_pings(300);
        print_message("real qemu-ga, guest-ping round trip: %" PRIu64 " us with a sync per command, %" PRIu64
                      " us with sync on demand\n",
                      each, on_demand);
        assert_int_equal(t->connected_changes, 1);

        t->c = qga_client_free(t->c);
        t->client_fd = -EBADF;
        /* Not SIGTERM: qemu-ga 7.2 logs from its signal handler and can deadlock
         * on GLib's log lock when the signal arrives mid-message. */
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        (void) unlink(file);
        (void) unlink(sock);
        (void) unlink(pidfile);
        (void) unlink(logfile);
        {
                _cleanup_free_ char *statefile = NULL; /* qemu-ga's own, in its -t directory */
                assert_true(asprintf(&statefile, "%s/qga.state", dir) > 0);
                (void) unlink(statefile);
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stats_counters, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_text, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ping_on_demand, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_replies_before_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ff_resets_parser, setup, teardown),
                cmocka_unit_test_setup_teardown(test_garbage_before_sync_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_late_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_late_reply, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_late_reply_while_idle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout_late_reply_while_idle, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_overlong_line, setup, teardown),
                cmocka_unit_test_setup_teardown(test_line_of_max_length, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_file_read_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_file_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_send_file_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_flood_while_idle, setup, teardown),
                cmocka_unit_test_setup_teardown(test_flood_while_idle, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_mid_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_error_replies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_presend_fake_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_presend_fake_reply_on_demand, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reply_none, setup, teardown),
                cmocka_unit_test_setup_teardown(test_max_reply_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_many_values, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup_on_demand, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_completed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_from_connected_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reentrancy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sync_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attach_sync_now_and_resync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resync_reports_reconnect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abandoned_partial_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_write_pieces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_wire_checks, setup, teardown),
                cmocka_unit_test(test_b64_vectors),
                cmocka_unit_test(test_b64_invalid),
                cmocka_unit_test(test_b64_roundtrip),
                cmocka_unit_test(test_file_read_parse),
                cmocka_unit_test(test_file_read_scan),
                cmocka_unit_test(test_file_write_line),
                cmocka_unit_test_setup_teardown(test_real_qemu_ga, setup, teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        if (getenv("QGA_TEST_FILTER")) /* e.g. QGA_TEST_FILTER='*qemu_ga*' */
                cmocka_set_test_filter(getenv("QGA_TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
