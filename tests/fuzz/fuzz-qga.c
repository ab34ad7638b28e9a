/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-agent client (agent/qga.c, agent/qga-file.c) fed by a hostile guest:
 * the fuzzer's bytes are what the agent writes (sync replies, command replies,
 * guest-file-read data, 0xFF resets, chatter, over-long lines), cut at the fuzzer's
 * split points, on a real sd_event loop stepped by hand, through the public API
 * only. The sync id the client picked at random is available to the script (0x05).
 * guest-file-read goes through qga_send_file_read() as the supervisor's ReadFile does
 * (its replies decoded straight from the line, or parsed by jansson and
 * qga_file_read_parse() when they have another shape), and every line of the input is
 * also given to both readers of a guest-file-read reply: when the direct one accepts
 * it, jansson and qga_file_read_parse() accept it too, with the same data; and to
 * json_wire_reply_return(): when it re-writes a reply, jansson reads the line and
 * writes its "return" value as the same text. Some commands ask for the text
 * (qga_send_text()), as the supervisor's Agent1.Command does.
 * Checked: every command is answered exactly once with a documented error, agent
 * error text is sanitized, callbacks never run from inside the calls that promise
 * so, on_connected_changed reports changes only, the input buffer stays bounded. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "json-wire.h"
#include "qga-file.h"
#include "qga.h"

#define MAX_COMMANDS 64U
#define REPLY_SLACK (64U * 1024U) /* as the supervisor's file transfers */

typedef struct Harness Harness;
typedef struct Command {
        Harness *h;
        uint64_t id;
        unsigned kind;
        size_t read_count; /* guest-file-read: what was asked for */
        uint8_t *read_buf; /* and where the data goes */
        uint8_t hook;
        unsigned answered;
} Command;

struct Harness {
        FuzzPeer peer;
        QgaClient *client;
        Command commands[MAX_COMMANDS];
        size_t n_commands;
        uint64_t last_id;
        bool in_api;            /* inside a call whose callbacks come from the loop */
        bool connected_seen;    /* what on_connected_changed last said */
        bool free_on_connected;
        bool freeing;
        unsigned reads_parsed;
};

static void send_command(Harness *h, uint8_t x);

/* Callbacks run from inside qga_client_free() see the client until it returns. */
static void harness_free_client(Harness *h) {
        if (h->freeing || !h->client)
                return;
        h->freeing = true;
        h->client = qga_client_free(h->client);
        h->freeing = false;
}

static bool sanitized(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

static void on_reply(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                     void *userdata) {
        Command *cmd = userdata;
        Harness *h = cmd->h;

        FUZZ_ASSERT(c == h->client);
        FUZZ_ASSERT(!h->in_api);
        FUZZ_ASSERT(cmd->answered == 0);
        cmd->answered++;
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "reply %" PRIu64 ": %s%s%s\n", cmd->id, strerror(-error), err_class ? " " : "",
                        err_class ?: "");
        FUZZ_ASSERT(IN_SET(error, 0, -EREMOTEIO, -ETIMEDOUT, -EPROTO, -EFBIG, -ENOTCONN, -ECANCELED, -ENOMEM) ||
                    (error == -EBADMSG && cmd->kind == 1));
        FUZZ_ASSERT((error == 0) == (result != NULL));
        FUZZ_ASSERT((error == -EREMOTEIO) == (err_class != NULL));
        FUZZ_ASSERT((error == -EREMOTEIO) == (err_desc != NULL));
        if (err_class) {
                FUZZ_ASSERT(sanitized(err_class, QGA_ERROR_CLASS_MAX));
                FUZZ_ASSERT(sanitized(err_desc, QGA_ERROR_DESC_MAX));
        }
        if (error == 0 && cmd->kind == 1) {
                /* What the supervisor's ReadFile relies on: the size, within what was asked. */
                json_t *n = json_object_get(result, "count");

                FUZZ_ASSERT(json_is_integer(n) && json_integer_value(n) >= 0 &&
                            (uint64_t) json_integer_value(n) <= cmd->read_count);
                FUZZ_ASSERT(json_is_boolean(json_object_get(result, "eof")));
                h->reads_parsed++;
        }

        if (cmd->hook & 0x40)
                harness_free_client(h);
        else if (cmd->hook & 0x80) {
                if (h->client) {
                        (void) qga_cancel(h->client, h->last_id);
                        send_command(h, 0x00);
                }
        }
}

static void on_text(QgaClient *c, int error, const char *text, size_t len, const char *err_class,
                    const char *err_desc, void *userdata) {
        json_auto_t *v = NULL;

        FUZZ_ASSERT((error == 0) == (text != NULL));
        if (text) {
                /* Compact JSON, ASCII only, as long as it says. */
                FUZZ_ASSERT(strlen(text) == len);
                for (size_t i = 0; i < len; i++)
                        FUZZ_ASSERT((unsigned char) text[i] >= 0x20 && (unsigned char) text[i] < 0x80);
                v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
                FUZZ_ASSERT(v);
        }
        on_reply(c, error, v, err_class, err_desc, userdata);
}

static void send_command(Harness *h, uint8_t x) {
        static const size_t counts[] = { 0, 3, 4096, 65536 };
        json_auto_t *args = NULL;
        const char *name = "guest-ping";
        QgaReplyMode mode = QGA_REPLY_NORMAL;
        size_t max_reply = REPLY_SLACK;
        uint64_t timeout = (x & 0x20) ? 1 : 0, id = 0;
        Command *cmd;
        int r;

        if (!h->client || h->n_commands >= MAX_COMMANDS)
                return;
        cmd = &h->commands[h->n_commands];
        *cmd = (Command) { .h = h, .kind = x & 7, .hook = x & 0xc0 };

        switch (cmd->kind) {
        case 1:
                name = "guest-file-read";
                cmd->read_count = counts[(x >> 3) & 3];
                cmd->read_buf = malloc(cmd->read_count + 1);
                FUZZ_ASSERT(cmd->read_buf);
                break;
        case 2:
                name = "guest-shutdown";
                mode = QGA_REPLY_NONE;
                break;
        case 3:
                name = "guest-info";
                max_reply = 0; /* QGA_LINE_MAX */
                break;
        case 4:
                name = (x & 8) ? "guest-sync" : "guest-sync-delimited";
                break;
        case 6:
                name = "guest-get-osinfo";
                max_reply = 16;
                break;
        case 7:
                name = "guest-exec";
                args = json_pack("{s:s,s:[s]}", "path", "/bin/true\n\xc3\xbf", "arg", "x");
                break;
        default:
                break;
        }

        h->in_api = true;
        if (cmd->kind == 5)
                r = qga_send_file_write(h->client, 1000, "hello\n\xff", 7, timeout, on_reply, cmd, &id);
        else if (cmd->kind == 1)
                r = qga_send_file_read(h->client, 1000, cmd->read_count, cmd->read_buf, timeout, on_reply, cmd, &id);
        else if ((x & 0x18) == 0x18 && cmd->kind != 4)
                r = qga_send_text(h->client, name, args, mode, timeout, max_reply, on_text, cmd, &id);
        else
                r = qga_send(h->client, name, args, mode, timeout, max_reply, on_reply, cmd, &id);
        h->in_api = false;
        if (r < 0) {
                cmd->read_buf = mfree(cmd->read_buf);
                FUZZ_ASSERT(IN_SET(r, -ENOTCONN, -EBUSY, -EPERM, -ENOMEM));
                FUZZ_ASSERT((r == -EPERM) == (cmd->kind == 4));
                return;
        }
        FUZZ_ASSERT(cmd->kind != 4);
        FUZZ_ASSERT(id > h->last_id);
        cmd->id = h->last_id = id;
        h->n_commands++;
}

static void on_connected_changed(QgaClient *c, bool connected, void *userdata) {
        Harness *h = userdata;

        FUZZ_ASSERT(c == h->client);
        FUZZ_ASSERT(!h->in_api);
        FUZZ_ASSERT(connected != h->connected_seen);
        h->connected_seen = connected;
        if (h->free_on_connected)
                harness_free_client(h);
}

static void action(FuzzPeer *p, uint8_t x, void *userdata) {
        send_command(userdata, x);
}

static void action2(FuzzPeer *p, uint8_t x, void *userdata) {
        Harness *h = userdata;
        int fd, r;

        if (!h->client)
                return;
        switch (x >> 4) {
        case 0:
                (void) qga_cancel(h->client, x & 0x0f);
                break;
        case 1:
                h->in_api = true;
                r = qga_client_resync(h->client);
                h->in_api = false;
                FUZZ_ASSERT(r == 0 || r == -ENOTCONN);
                break;
        case 2:
                h->in_api = true;
                qga_client_detach(h->client);
                h->in_api = false;
                break;
        case 3:
                /* The guest reopened the port: a new channel. */
                FUZZ_ASSERT(fuzz_peer_reopen(p, &fd) >= 0);
                h->in_api = true;
                r = qga_client_attach(h->client, fd, x & 1);
                h->in_api = false;
                FUZZ_ASSERT(r == 0);
                break;
        case 4:
                FUZZ_ASSERT(qga_client_set_sync_mode(h->client, (x & 1) ? QGA_SYNC_ON_DEMAND
                                                                          : QGA_SYNC_EACH_COMMAND) == 0);
                break;
        case 5:
                FUZZ_ASSERT(qga_client_set_timeouts(h->client, 1, 1) == 0);
                break;
        case 6:
                harness_free_client(h);
                break;
        case 7:
                if (p->fd >= 0)
                        (void) shutdown(p->fd, SHUT_WR);
                break;
        case 8:
                h->free_on_connected = true;
                break;
        default:
                break;
        }
}

static void current_sync_id(FuzzPeer *p, char *buf, void *userdata) {
        uint64_t id = 0;

        (void) fuzz_peer_find_number(p, "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":", &id);
        snprintf(buf, 32, "%" PRIu64, id);
}

/* The direct reader of guest-file-read replies never accepts what the path through jansson
 * refuses, and decodes the same bytes. */
static void check_read_reply(const char *line, size_t len, size_t buf_size) {
        uint8_t *a = malloc(buf_size + 1), *b = malloc(buf_size + 1);
        size_t na = 0, nb = 0;
        bool ea = false, eb = false;

        FUZZ_ASSERT(a && b);
        if (qga_file_read_scan(line, len, a, buf_size, &na, &ea) > 0) {
                json_auto_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
                FUZZ_ASSERT(json_is_object(v) && json_object_size(v) == 1);
                FUZZ_ASSERT(qga_file_read_parse(json_object_get(v, "return"), b, buf_size, &nb, &eb) >= 0);
                FUZZ_ASSERT(na == nb && ea == eb && memcmp(a, b, na) == 0);
        }
        free(a);
        free(b);
}

/* A reply re-written straight from the line is what jansson reads and writes. */
static void check_reply_text(const char *line, size_t len) {
        _cleanup_free_ char *text = NULL, *dumped = NULL;
        size_t n = 0;
        int r = json_wire_reply_return(line, len, &text, &n);

        FUZZ_ASSERT(r >= 0);
        if (r == 0)
                return;
        json_auto_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_ASSERT(json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "return"));
        dumped = json_dumps(json_object_get(v, "return"), JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        FUZZ_ASSERT(dumped && strlen(text) == n && streq(dumped, text));
}

static void check_read_replies(const uint8_t *data, size_t size) {
        const char *p = (const char *) data, *end = p + size;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);

                check_read_reply(p, len, qga_b64_decoded_max(len));
                check_read_reply(p, len, 3);
                check_reply_text(p, len);
                p += len + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const QgaCallbacks cb = { .on_connected_changed = on_connected_changed };
        static const FuzzPeerOps ops = { .action = action, .action2 = action2, .id = current_sync_id };
        Harness *h;
        sd_event *e = NULL;
        int fd, r;

        h = calloc(1, sizeof *h);
        FUZZ_ASSERT(h);
        FUZZ_ASSERT(sd_event_new(&e) >= 0);
        FUZZ_ASSERT(qga_client_new(e, &cb, h, &h->client) >= 0);
        FUZZ_ASSERT(fuzz_peer_open(&h->peer, e, &fd) >= 0);
        /* Past every limit but QGA_LINE_MAX itself (64 MiB, too slow to fill each time). */
        h->peer.fill_unit = 4096;
        h->peer.fill_budget = 3 * REPLY_SLACK;
        h->in_api = true;
        r = qga_client_attach(h->client, fd, true);
        h->in_api = false;
        FUZZ_ASSERT(r == 0);
        fuzz_peer_step(&h->peer);

        fuzz_peer_run(&h->peer, data, size, &ops, h);
        if (h->client)
                FUZZ_ASSERT(qga_client_buffer_peak(h->client) <= QGA_INPUT_BUFFER_MAX);

        /* The guest closes the port: whatever waits fails, from the loop. */
        if (h->peer.fd >= 0)
                (void) shutdown(h->peer.fd, SHUT_WR);
        fuzz_peer_step(&h->peer);
        if (h->client) {
                FUZZ_ASSERT(!qga_client_is_connected(h->client));
                FUZZ_ASSERT(qga_client_pending(h->client) == 0);
        }
        harness_free_client(h);

        for (size_t i = 0; i < h->n_commands; i++) {
                FUZZ_ASSERT(h->commands[i].answered == 1);
                free(h->commands[i].read_buf);
        }
        check_read_replies(data, size);

        fuzz_peer_step(&h->peer);
        fuzz_peer_close(&h->peer);
        sd_event_unref(e);
        free(h);
        return 0;
}
