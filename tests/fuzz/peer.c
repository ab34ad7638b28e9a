/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The scripted peer of the stream clients, and what every harness shares. */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

/* What is kept of the client's output: enough for the last sync line. */
#define PEER_OUT_KEEP 4096U
/* Loop iterations per step: a client that keeps itself busy forever is a finding. */
#define PEER_STEP_MAX 100000U

_Noreturn void fuzz_assert_failed(const char *expr, const char *file, int line) {
        fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
        abort();
}

int fuzz_peer_open(FuzzPeer *p, sd_event *e, int *ret_client_fd) {
        *p = (FuzzPeer) { .event = e, .fd = -1 };
        return fuzz_peer_reopen(p, ret_client_fd);
}

int fuzz_peer_reopen(FuzzPeer *p, int *ret_client_fd) {
        int sv[2];

        if (p->fd >= 0)
                close(p->fd);
        p->fd = -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        p->fd = sv[0];
        p->broken = false;
        *ret_client_fd = sv[1];
        return 0;
}

void fuzz_peer_close(FuzzPeer *p) {
        if (p->fd >= 0)
                close(p->fd);
        p->fd = -1;
        free(p->out);
        p->out = NULL;
        p->out_len = 0;
}

static void peer_drain(FuzzPeer *p) {
        char buf[65536];

        while (p->fd >= 0) {
                ssize_t k = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (k <= 0)
                        return;
                p->out_total += (uint64_t) k;
                if (p->out_len + (size_t) k > PEER_OUT_KEEP) {
                        /* Keep the tail of what came before and the tail of this read. */
                        size_t keep_new = (size_t) k > PEER_OUT_KEEP ? PEER_OUT_KEEP : (size_t) k;
                        size_t keep_old = PEER_OUT_KEEP - keep_new;
                        if (keep_old > p->out_len)
                                keep_old = p->out_len;
                        memmove(p->out, p->out + p->out_len - keep_old, keep_old);
                        memcpy(p->out + keep_old, buf + (size_t) k - keep_new, keep_new);
                        p->out_len = keep_old + keep_new;
                } else {
                        if (!p->out) {
                                p->out = malloc(PEER_OUT_KEEP);
                                FUZZ_ASSERT(p->out);
                        }
                        memcpy(p->out + p->out_len, buf, (size_t) k);
                        p->out_len += (size_t) k;
                }
        }
}

void fuzz_peer_step(FuzzPeer *p) {
        unsigned i;

        for (i = 0; i < PEER_STEP_MAX; i++) {
                int r;

                peer_drain(p);
                r = sd_event_run(p->event, 0);
                FUZZ_ASSERT(r >= 0);
                if (r == 0) {
                        peer_drain(p);
                        return;
                }
        }
        FUZZ_ASSERT(!"the client never became idle");
}

void fuzz_peer_write(FuzzPeer *p, const void *buf, size_t n) {
        const char *b = buf;
        unsigned stalls = 0;

        while (n > 0 && p->fd >= 0 && !p->broken) {
                ssize_t k = send(p->fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                /* The client reads when the loop runs; if it does not (it stopped
                                 * reading: closed, or waits for its output), give up the rest. */
                                fuzz_peer_step(p);
                                if (++stalls > 64)
                                        p->broken = true;
                                continue;
                        }
                        p->broken = true; /* EPIPE, ECONNRESET: the client closed */
                        return;
                }
                stalls = 0;
                b += k;
                n -= (size_t) k;
        }
}

void fuzz_peer_run(FuzzPeer *p, const uint8_t *data, size_t size, const FuzzPeerOps *ops, void *userdata) {
        /* Data is collected up to the next split point and written in one go. */
        uint8_t *buf = malloc(size + 1);
        size_t len = 0;

        FUZZ_ASSERT(buf);
        for (size_t i = 0; i < size; i++) {
                uint8_t ch = data[i];

                switch (ch) {
                case FUZZ_OP_SPLIT:
                        fuzz_peer_write(p, buf, len);
                        len = 0;
                        fuzz_peer_step(p);
                        break;
                case FUZZ_OP_ACTION:
                case FUZZ_OP_ACTION2:
                        if (i + 1 >= size)
                                break;
                        fuzz_peer_write(p, buf, len);
                        len = 0;
                        fuzz_peer_step(p);
                        i++;
                        if (ch == FUZZ_OP_ACTION && ops->action)
                                ops->action(p, data[i], userdata);
                        else if (ch == FUZZ_OP_ACTION2 && ops->action2)
                                ops->action2(p, data[i], userdata);
                        fuzz_peer_step(p);
                        break;
                case FUZZ_OP_FILL: {
                        char fill[FUZZ_FILL_UNIT];
                        size_t unit = p->fill_unit > 0 && p->fill_unit < sizeof fill ? p->fill_unit : sizeof fill;
                        unsigned units;

                        if (i + 2 >= size)
                                break;
                        /* Most values give a little; the top ones all the budget, so that
                         * random mutations rarely cost megabytes of copying. */
                        units = data[i + 1] > 0xf0 ? UINT_MAX : data[i + 1];
                        memset(fill, data[i + 2], sizeof fill);
                        i += 2;
                        fuzz_peer_write(p, buf, len);
                        len = 0;
                        for (unsigned u = 0; u < units && !p->broken && p->fill_budget >= unit; u++) {
                                fuzz_peer_write(p, fill, unit);
                                p->fill_budget -= unit;
                        }
                        break;
                }
                case FUZZ_OP_ID: {
                        char id[32] = "0";
                        size_t n;

                        /* Whatever is pending goes out first: the id may change on the way. */
                        fuzz_peer_write(p, buf, len);
                        len = 0;
                        if (ops->id)
                                ops->id(p, id, userdata);
                        n = strnlen(id, sizeof id - 1);
                        fuzz_peer_write(p, id, n);
                        break;
                }
                case FUZZ_OP_ESCAPE:
                        if (i + 1 < size)
                                buf[len++] = data[++i];
                        break;
                default:
                        buf[len++] = ch;
                }
        }
        fuzz_peer_write(p, buf, len);
        fuzz_peer_step(p);
        free(buf);
}

int fuzz_peer_find_number(FuzzPeer *p, const char *prefix, uint64_t *ret) {
        size_t plen = strlen(prefix);
        const char *last = NULL;
        uint64_t v = 0;

        for (const char *s = p->out; s && (size_t) (s - p->out) + plen <= p->out_len;) {
                const char *q = memmem(s, p->out_len - (size_t) (s - p->out), prefix, plen);
                if (!q)
                        break;
                last = q;
                s = q + 1;
        }
        if (!last)
                return -ENOENT;
        for (const char *s = last + plen; s < p->out + p->out_len && *s >= '0' && *s <= '9'; s++)
                v = v * 10 + (uint64_t) (*s - '0');
        *ret = v;
        return 0;
}
