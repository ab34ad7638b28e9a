/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asynchronous guest-agent (QGA) client on an sd_event loop.
 *
 * Every byte on this channel is written by the guest: hostile input.
 *
 * Transport: a connected stream socket to QEMU's agent chardev. Framing:
 * newline-terminated JSON with a bounded line buffer; a 0xFF byte from the
 * agent resets the parser (the answer to our own 0xFF sentinel).
 *
 * Synchronization (qga-qapi-schema "guest-sync-delimited"): before the first
 * command, and after every timeout, protocol error or reconnect, the client
 * writes 0xFF followed by {"execute":"guest-sync-delimited","arguments":{"id":N}}
 * with a fresh random N, and discards everything until {"return":N}.
 *
 * One command in flight at a time; further ones wait in a bounded queue. */

#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* The longest agent line accepted: a full 48 MiB guest-file-read reply in
 * base64 plus slack. Longer: dropped, channel re-synced, call fails -EPROTO. */
#define QGA_LINE_MAX ((48U * 1024U * 1024U) / 3U * 4U + 64U * 1024U)
/* Commands waiting behind the one in flight; more is -EBUSY. */
#define QGA_QUEUE_MAX 16U
#define QGA_DEFAULT_TIMEOUT_USEC (10U * 1000000U)
#define QGA_SYNC_TIMEOUT_USEC (5U * 1000000U)
#define QGA_FSFREEZE_TIMEOUT_USEC (60U * 1000000U)

typedef struct QgaClient QgaClient;

/* Called once per command.
 * error == 0: result is the "return" value (borrowed; {} for no-reply commands).
 * error == -EREMOTEIO: agent error; err_class / err_desc set (desc sanitized).
 * error == -ETIMEDOUT, -EPROTO (over-long line, bad reply), -ENOTCONN (no channel,
 * or channel lost), -ECANCELED (qga_cancel / free). */
typedef void (*qga_reply_cb_t)(QgaClient *c, int error, json_t *result, const char *err_class,
                               const char *err_desc, void *userdata);

typedef struct QgaCallbacks {
        /* The agent answered a sync (connected == true) or the channel/sync failed (false). */
        void (*on_connected_changed)(QgaClient *c, bool connected, void *userdata);
} QgaCallbacks;

typedef enum QgaReplyMode {
        QGA_REPLY_NORMAL,   /* wait for a reply */
        QGA_REPLY_NONE,     /* never replies on success (guest-shutdown, guest-suspend-*):
                             * success once written and no error arrived within a short grace */
} QgaReplyMode;

int qga_client_new(sd_event *event, const QgaCallbacks *cb, void *userdata, QgaClient **ret);
/* Fails queued commands with -ECANCELED. Accepts NULL. */
QgaClient *qga_client_free(QgaClient *c);

/* Attaches a connected socket (ownership taken; any previous fd is closed and
 * in-flight commands fail with -ENOTCONN). The client syncs before the next command
 * and, if sync_now, right away. Returns 0 or -errno. */
int qga_client_attach(QgaClient *c, int fd, bool sync_now);
/* Detaches (guest closed the port): pending commands fail with -ENOTCONN. */
void qga_client_detach(QgaClient *c);
/* Forces a re-sync before the next command (e.g. VSERPORT_CHANGE open). */
int qga_client_resync(QgaClient *c);

/* Queues one command. arguments may be NULL (borrowed). timeout 0 = default.
 * max_reply_bytes: a reply line longer than this fails the call with -EFBIG after
 * being read (bounded by QGA_LINE_MAX anyway); 0 = QGA_LINE_MAX.
 * Returns 0 (the callback will run once, never from within this call), -ENOTCONN
 * when no channel is attached, -EBUSY when the queue is full. */
int qga_send(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode,
             uint64_t timeout_usec, size_t max_reply_bytes, qga_reply_cb_t cb, void *userdata,
             uint64_t *ret_id);
int qga_cancel(QgaClient *c, uint64_t id);

bool qga_client_is_connected(QgaClient *c); /* last sync answered */

DEFINE_TRIVIAL_CLEANUP_FUNC(QgaClient *, qga_client_free);
