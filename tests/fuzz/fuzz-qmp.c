/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QMP client (monitor/qmp.c) fed by a hostile QEMU: the fuzzer's bytes are what
 * QEMU writes on the monitor socket (greeting, replies, events, over-long lines), cut
 * at the fuzzer's split points; the client runs on a real sd_event loop stepped by
 * hand, through its public API only. Checked: every request is answered exactly once
 * with a documented error, on_disconnect comes at most once, nothing leaks. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "qmp.h"

#define MAX_REQUESTS 64U

typedef enum ReplyHook {
        HOOK_NONE,
        HOOK_SEND,   /* the callback sends another request */
        HOOK_FREE,   /* the callback frees the client */
        HOOK_CANCEL, /* the callback cancels the newest request */
} ReplyHook;

typedef struct Harness Harness;
typedef struct Request {
        Harness *h;
        uint64_t id;
        ReplyHook hook;
        unsigned answered;
} Request;

struct Harness {
        FuzzPeer peer;
        QmpClient *client;
        Request requests[MAX_REQUESTS];
        size_t n_requests;
        uint64_t last_id;
        unsigned ready, disconnected;
        bool free_on_event, free_on_disconnect, send_on_ready, freeing;
};

static void send_request(Harness *h, uint8_t x);

/* Callbacks run from inside qmp_client_free() see the client until it returns. */
static void harness_free_client(Harness *h) {
        if (h->freeing || !h->client)
                return;
        h->freeing = true;
        h->client = qmp_client_free(h->client);
        h->freeing = false;
}

static void on_reply(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                     void *userdata) {
        Request *req = userdata;
        Harness *h = req->h;

        FUZZ_ASSERT(c == h->client);
        FUZZ_ASSERT(req->answered == 0);
        req->answered++;
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "reply %" PRIu64 ": %s%s%s\n", req->id, strerror(-error), err_class ? " " : "",
                        err_class ?: "");
        FUZZ_ASSERT(IN_SET(error, 0, -EREMOTEIO, -ETIMEDOUT, -EFBIG, -ECONNRESET, -ECANCELED));
        FUZZ_ASSERT((error == -EREMOTEIO) == (err_class != NULL));
        FUZZ_ASSERT((error == -EREMOTEIO) == (err_desc != NULL));
        FUZZ_ASSERT(error == 0 || result == NULL);
        if (result)
                free(json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY)); /* the value is whole */
        if (err_class)
                FUZZ_ASSERT(strlen(err_class) + strlen(err_desc) < SIZE_MAX);

        switch (req->hook) {
        case HOOK_SEND:
                send_request(h, 0x01);
                break;
        case HOOK_FREE:
                harness_free_client(h);
                break;
        case HOOK_CANCEL:
                if (h->client)
                        (void) qmp_cancel(h->client, h->last_id);
                break;
        default:
                break;
        }
}

static void send_request(Harness *h, uint8_t x) {
        static const char * const names[] = {
                "query-status", "human-monitor-command", "cont", "stop",
                "qom-list", "bad name!", "query-version", "__org.example_cmd",
        };
        json_auto_t *args = NULL;
        Request *req;
        uint64_t id = 0;
        int r;

        if (!h->client || h->n_requests >= MAX_REQUESTS)
                return;
        req = &h->requests[h->n_requests];
        *req = (Request) { .h = h, .hook = (ReplyHook) ((x >> 5) & 3) };
        if (x & 0x10) {
                args = json_pack("{s:s}", "command-line", "info status");
                FUZZ_ASSERT(args);
        }
        r = qmp_send(h->client, names[x & 7], args, (x & 0x08) ? 1 : 0, on_reply, req, &id);
        if (r < 0) {
                FUZZ_ASSERT(IN_SET(r, -EINVAL, -ENOTCONN, -EBUSY, -ENOBUFS, -ENOMEM));
                FUZZ_ASSERT(r != -EINVAL || (x & 7) == 5);
                return;
        }
        FUZZ_ASSERT((x & 7) != 5);
        /* Ids are random below 2^53, never 0, and never one still waiting. */
        FUZZ_ASSERT(id > 0 && id < (UINT64_C(1) << 53));
        for (size_t i = 0; i < h->n_requests; i++)
                FUZZ_ASSERT(h->requests[i].answered || h->requests[i].id != id);
        req->id = h->last_id = id;
        h->n_requests++;
}

static void on_ready(QmpClient *c, void *userdata) {
        Harness *h = userdata;

        FUZZ_ASSERT(h->ready == 0 && h->disconnected == 0);
        h->ready++;
        FUZZ_ASSERT(qmp_client_is_ready(c));
        FUZZ_ASSERT(qmp_client_version(c) != NULL);
        if (h->send_on_ready)
                send_request(h, 0x00);
}

static void on_event(QmpClient *c, const char *name, json_t *data, uint64_t ts, void *userdata) {
        Harness *h = userdata;

        FUZZ_ASSERT(h->disconnected == 0);
        FUZZ_ASSERT(name && json_is_object(data));
        if (h->free_on_event)
                harness_free_client(h);
}

static void on_disconnect(QmpClient *c, int error, void *userdata) {
        Harness *h = userdata;

        FUZZ_ASSERT(h->disconnected == 0);
        h->disconnected++;
        FUZZ_ASSERT(error <= 0);
        FUZZ_ASSERT(!qmp_client_is_ready(c));
        FUZZ_ASSERT(qmp_client_pending(c) == 0);
        /* Every request was failed before this. */
        for (size_t i = 0; i < h->n_requests; i++)
                FUZZ_ASSERT(h->requests[i].answered == 1);
        FUZZ_ASSERT(qmp_send(c, "query-status", NULL, 0, NULL, NULL, NULL) == -ENOTCONN);
        if (h->free_on_disconnect)
                harness_free_client(h);
}

static void action(FuzzPeer *p, uint8_t x, void *userdata) {
        send_request(userdata, x);
}

static void action2(FuzzPeer *p, uint8_t x, void *userdata) {
        Harness *h = userdata;

        switch (x >> 4) {
        case 0:
                if (h->client)
                        (void) qmp_cancel(h->client, x & 0x0f);
                break;
        case 1:
                h->free_on_event = true;
                break;
        case 2:
                h->free_on_disconnect = true;
                break;
        case 3:
                h->send_on_ready = true;
                break;
        case 4:
                harness_free_client(h);
                break;
        case 5:
                /* QEMU goes away (EOF). */
                if (p->fd >= 0)
                        (void) shutdown(p->fd, SHUT_WR);
                break;
        default:
                break;
        }
}

static void current_id(FuzzPeer *p, char *buf, void *userdata) {
        Harness *h = userdata;

        /* The oldest request still waiting: what QEMU would answer next. */
        for (size_t i = 0; i < h->n_requests; i++)
                if (!h->requests[i].answered) {
                        snprintf(buf, 32, "%" PRIu64, h->requests[i].id);
                        return;
                }
        /* None of ours: the last id the client wrote (qmp_capabilities' during negotiation). */
        uint64_t id;
        if (fuzz_peer_find_number(p, "\"id\":", &id) == 0)
                snprintf(buf, 32, "%" PRIu64, id);
        else
                snprintf(buf, 32, "%" PRIu64, h->last_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const QmpCallbacks cb = {
                .on_ready = on_ready,
                .on_event = on_event,
                .on_disconnect = on_disconnect,
        };
        static const FuzzPeerOps ops = { .action = action, .action2 = action2, .id = current_id };
        Harness *h;
        sd_event *e = NULL;
        int fd, r;

        h = calloc(1, sizeof *h);
        FUZZ_ASSERT(h);
        FUZZ_ASSERT(sd_event_new(&e) >= 0);
        FUZZ_ASSERT(fuzz_peer_open(&h->peer, e, &fd) >= 0);
        r = qmp_client_new(e, fd, &cb, h, &h->client);
        FUZZ_ASSERT(r >= 0);
        /* One line past QMP_LINE_MAX at most: 16 MiB of filler is what makes an input slow. */
        h->peer.fill_unit = 4096;
        h->peer.fill_budget = QMP_LINE_MAX + 2 * h->peer.fill_unit;

        fuzz_peer_run(&h->peer, data, size, &ops, h);

        /* QEMU goes away: the client must end cleanly whatever state it is in. */
        if (h->peer.fd >= 0)
                (void) shutdown(h->peer.fd, SHUT_WR);
        fuzz_peer_step(&h->peer);
        /* Unless freed by a callback, the client has seen the end and said so. */
        if (h->client)
                FUZZ_ASSERT(h->disconnected == 1);
        harness_free_client(h);

        for (size_t i = 0; i < h->n_requests; i++)
                FUZZ_ASSERT(h->requests[i].answered == 1);
        FUZZ_ASSERT(h->disconnected <= 1);

        fuzz_peer_step(&h->peer);
        fuzz_peer_close(&h->peer);
        sd_event_unref(e);
        free(h);
        return 0;
}
