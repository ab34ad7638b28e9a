/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asynchronous guest-agent (QGA) client on an sd_event loop.
 *
 * Every byte on this channel is written by the guest: hostile input.
 *
 * Layers: framing (bounded line buffer, 0xFF resets the parser, bounded
 * output) → synchronization (guest-sync-delimited) → command queue (one
 * command in flight, timers, callbacks).
 *
 * Transport: a connected stream socket to QEMU's agent chardev. Framing:
 * newline-terminated JSON with a bounded line buffer; a 0xFF byte from the
 * agent resets the parser (the answer to our own 0xFF sentinel).
 *
 * Synchronization (qga-qapi-schema "guest-sync-delimited"): the client writes
 * 0xFF followed by {"execute":"guest-sync-delimited","arguments":{"id":N}}
 * with a fresh random N (0 < N < 2^53), and discards everything until a line
 * that is exactly {"return":N}. In the default mode (QGA_SYNC_EACH_COMMAND)
 * every command gets its own sync, so the reply a command receives is the
 * first line after its own sync reply: a stale or forged line from before can
 * never answer it. A command is only written when nothing arrived after the
 * sync reply. Besides, the channel is re-synchronized after every timeout,
 * protocol error, cancellation, attach or qga_client_resync(), and whenever
 * the agent sends anything while no command is in flight. A protocol error
 * never makes the channel permanently unusable.
 *
 * One command in flight at a time; further ones wait in a bounded queue.
 * Reply callbacks and on_connected_changed run from the event loop (a defer
 * source), never from within qga_send(), qga_client_attach(),
 * qga_client_detach() or qga_client_resync(); only qga_cancel() and
 * qga_client_free() run callbacks from within the call. Callbacks may call
 * any function of this API on the same client, including qga_client_free(). */

#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "qga-file.h"

/* The longest agent line accepted: a full guest-file-read reply
 * (QGA_FILE_READ_CHUNK_MAX) in base64 plus slack. Longer: dropped, channel
 * re-synced, call fails -EPROTO. */
#define QGA_LINE_MAX (QGA_FILE_READ_CHUNK_MAX / 3U * 4U + 64U * 1024U)
/* Commands waiting behind the one in flight; more is -EBUSY. */
#define QGA_QUEUE_MAX 16U
#define QGA_DEFAULT_TIMEOUT_USEC (10U * 1000000U)
#define QGA_SYNC_TIMEOUT_USEC (5U * 1000000U)
/* How long a QGA_REPLY_NONE command waits for an error reply before it counts
 * as successful. */
#define QGA_REPLY_NONE_GRACE_USEC (1U * 1000000U)
/* The longest command line written (qemu-ga refuses longer messages); longer is
 * -EMSGSIZE. */
#define QGA_COMMAND_MAX QGA_AGENT_MESSAGE_MAX
/* err_desc handed to callbacks is at most this long (plus NUL); err_class at
 * most QGA_ERROR_CLASS_MAX. */
#define QGA_ERROR_DESC_MAX 256U
#define QGA_ERROR_CLASS_MAX 64U
/* Input is read in chunks of QGA_READ_CHUNK_MIN, and of QGA_READ_CHUNK_MAX
 * while a long line is arriving. The input buffer never grows beyond
 * QGA_INPUT_BUFFER_MAX, and shrinks back to QGA_READ_CHUNK_MIN once the long
 * line has been handled. While no command is in flight, or one with a smaller
 * max_reply_bytes is, a line is only buffered up to that smaller limit. */
#define QGA_READ_CHUNK_MIN (64U * 1024U)
#define QGA_READ_CHUNK_MAX (1024U * 1024U)
#define QGA_INPUT_BUFFER_MAX (QGA_LINE_MAX + QGA_READ_CHUNK_MAX)
/* jansson spends some 200 bytes per JSON value: a 16 MiB line of "{}," would
 * cost more than 1 GiB. A reply is pre-counted (containers and separators
 * outside strings) and refused with -EFBIG beyond this, which keeps the parsed
 * form of one reply to tens of MiB. Real replies have a few thousand. */
#define QGA_REPLY_VALUES_MAX (256U * 1024U)

typedef struct QgaClient QgaClient;

/* Called once per command.
 * error == 0: result is the "return" value (borrowed; {} for no-reply commands).
 * error == -EREMOTEIO: agent error; err_class / err_desc set (both sanitized:
 *   printable ASCII only, truncated; never raw guest bytes).
 * error == -ETIMEDOUT: no answer in time (the timeout covers waiting in the
 *   queue, the sync and the execution; a late reply is dropped).
 * error == -EPROTO: over-long line or malformed reply (also an "error" whose
 *   class or desc is not a string).
 * error == -EFBIG: the reply line exceeded max_reply_bytes, or it holds more than
 *   QGA_REPLY_VALUES_MAX JSON values.
 * error == -ENOTCONN: no channel, or the channel was lost (EOF, I/O error,
 *   qga_client_detach(), or a new qga_client_attach() while in flight).
 * error == -ECANCELED: qga_cancel() or qga_client_free().
 * error == -ENOMEM: out of memory while receiving the reply.
 * err_class and err_desc are NULL unless error == -EREMOTEIO. */
typedef void (*qga_reply_cb_t)(QgaClient *c, int error, json_t *result, const char *err_class,
                               const char *err_desc, void *userdata);

/* The same for qga_send_text(): on success, text[0..len) (NUL-terminated) is the
 * result as compact JSON with only ASCII in it ("{}" for a command without a
 * reply), borrowed for the call. */
typedef void (*qga_text_cb_t)(QgaClient *c, int error, const char *text, size_t len, const char *err_class,
                              const char *err_desc, void *userdata);

typedef struct QgaCallbacks {
        /* The agent answered a sync (connected == true), or a sync timed out, a reply was
         * malformed or the channel went away (false). Only called on an actual change of
         * the value the owner last saw; runs before the reply callbacks of the same turn.
         * Chatter from the guest alone never changes it. */
        void (*on_connected_changed)(QgaClient *c, bool connected, void *userdata);
} QgaCallbacks;

typedef enum QgaReplyMode {
        QGA_REPLY_NORMAL,   /* wait for a reply */
        QGA_REPLY_NONE,     /* never replies on success (guest-shutdown, guest-suspend-*):
                             * success once written and no error arrived within a short grace
                             * (QGA_REPLY_NONE_GRACE_USEC), or when the channel goes away
                             * during the grace (the guest did what it was asked). An error
                             * reply in the grace is -EREMOTEIO. The channel re-syncs after. */
} QgaReplyMode;

typedef enum QgaSyncMode {
        QGA_SYNC_EACH_COMMAND, /* default: one sync round trip before every command */
        QGA_SYNC_ON_DEMAND,    /* sync only after attach, timeouts, errors, chatter */
        _QGA_SYNC_MODE_MAX,
        _QGA_SYNC_MODE_INVALID = -EINVAL,
} QgaSyncMode;

/* event is referenced; cb may be NULL. Returns 0, -EINVAL or -ENOMEM. */
int qga_client_new(sd_event *event, const QgaCallbacks *cb, void *userdata, QgaClient **ret);
/* Closes the channel, then runs every callback still owed from within this call:
 * completed commands with their result, the one in flight and queued ones with
 * -ECANCELED (a QGA_REPLY_NONE command already in its grace: success). Does not call
 * on_connected_changed. Safe from within a callback. Accepts NULL; returns NULL. */
QgaClient *qga_client_free(QgaClient *c);

/* Attaches a connected socket (ownership taken, also on failure: then it is
 * closed; set non-blocking here). Any previous fd is closed and the command in
 * flight fails with -ENOTCONN; queued commands stay and run on the new
 * channel. The client syncs before the next command and, if sync_now, right
 * away. Returns 0, -EINVAL, -ENOTCONN (client being freed) or -errno. */
int qga_client_attach(QgaClient *c, int fd, bool sync_now);
/* Detaches (guest closed the port): closes the fd; the command in flight and
 * queued ones fail with -ENOTCONN (their callbacks run from the event loop). */
void qga_client_detach(QgaClient *c);
/* Forces a re-sync (e.g. VSERPORT_CHANGE open): a new sync with a fresh id is
 * written now, or as soon as the command in flight has finished. The agent
 * counts as not connected until that sync is answered (on_connected_changed
 * reports false, then true). Returns 0, or -ENOTCONN when no channel is attached. */
int qga_client_resync(QgaClient *c);

/* Queues one command. arguments may be NULL, else a JSON object (borrowed; it is
 * serialized at once). timeout 0 = QGA_DEFAULT_TIMEOUT_USEC; the timer starts now
 * and covers the wait in the queue, the sync and the execution.
 * max_reply_bytes: a reply line longer than this fails the call with -EFBIG as
 * soon as it exceeds it; the rest of the line is discarded without being buffered
 * (bounded by QGA_LINE_MAX anyway); 0 = QGA_LINE_MAX.
 * Returns 0 and the command's id in *ret_id (may be NULL): the callback will run
 * once, never from within this call. Else -ENOTCONN when no channel is attached,
 * -EBUSY when the queue is full, -EPERM for guest-sync / guest-sync-delimited
 * (the client's own), -EINVAL for an empty name, non-object arguments, an
 * invalid mode or a line qemu-ga would read differently (json_wire_check_line():
 * nested deeper than JSON_WIRE_DEPTH_MAX, a noncharacter), -EMSGSIZE beyond
 * QGA_COMMAND_MAX, -ENOMEM. */
int qga_send(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode,
             uint64_t timeout_usec, size_t max_reply_bytes, qga_reply_cb_t cb, void *userdata,
             uint64_t *ret_id);
/* qga_send() for a caller that wants the result as text: a plain reply is re-written
 * straight from the input line (json_wire_reply_return(): no JSON value built),
 * any other through jansson, with the same text and the same refusals. */
int qga_send_text(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode,
                  uint64_t timeout_usec, size_t max_reply_bytes, qga_text_cb_t cb, void *userdata,
                  uint64_t *ret_id);
/* guest-file-write of data[0..size), which is borrowed: it must stay valid and
 * unchanged until the callback has run. The base64 is encoded into the output
 * 64 KiB at a time as the agent reads the command (no copy of the whole line).
 * size at most QGA_FILE_WRITE_CHUNK_MAX (qga-file.h), else -EMSGSIZE; a
 * negative handle is -EINVAL. Otherwise the same contract as qga_send(). */
int qga_send_file_write(QgaClient *c, int64_t handle, const void *data, size_t size,
                        uint64_t timeout_usec, qga_reply_cb_t cb, void *userdata, uint64_t *ret_id);
/* The longest reply line a guest-file-read of count bytes is allowed beyond its
 * base64: room for the JSON around it, or for an error naming a long path. */
#define QGA_FILE_READ_REPLY_SLACK (64U * 1024U)
/* guest-file-read of count bytes (at most QGA_FILE_READ_CHUNK_MAX, else
 * -EMSGSIZE) into buf, which must hold count bytes until the callback ran. The
 * reply is decoded straight from the input buffer into buf
 * (qga_file_read_scan()); a reply of another shape is parsed with jansson and
 * checked with qga_file_read_parse(), with the same outcome. On success the
 * callback's result is {"count": n, "eof": b} and buf[0..n) holds the data.
 * Besides qga_send()'s errors the callback may see -EBADMSG: the reply was
 * well-formed JSON but not correct data (count, base64, more than asked for).
 * A reply line longer than the base64 of count plus QGA_FILE_READ_REPLY_SLACK
 * fails with -EFBIG. Otherwise the same contract as qga_send(). */
int qga_send_file_read(QgaClient *c, int64_t handle, size_t count, void *buf, uint64_t timeout_usec,
                       qga_reply_cb_t cb, void *userdata, uint64_t *ret_id);
/* Drops a command that has not been reported yet: its callback runs now, from
 * within this call, with -ECANCELED. A command already written may still run in
 * the guest; its reply is discarded (the channel re-syncs). Returns 0, or
 * -ENOENT for an unknown or already reported id. */
int qga_cancel(QgaClient *c, uint64_t id);

bool qga_client_is_connected(QgaClient *c); /* last sync answered */
/* Commands queued or in flight (not counting ones whose callback is pending). */
size_t qga_client_pending(QgaClient *c);

/* Tuning, mainly for tests: 0 keeps the default. Returns 0 or -EINVAL. */
int qga_client_set_sync_mode(QgaClient *c, QgaSyncMode mode);
int qga_client_set_timeouts(QgaClient *c, uint64_t sync_timeout_usec, uint64_t reply_none_grace_usec);

/* Counters since the client was created (statistics). */
typedef struct QgaStats {
        uint64_t syncs;            /* guest-sync-delimited requests written */
        uint64_t sync_timeouts;    /* syncs the agent did not answer in time */
        uint64_t command_timeouts; /* commands that timed out (queued, syncing or sent) */
        uint64_t protocol_errors;  /* malformed replies */
        uint64_t dropped_lines;    /* lines nobody asked for (outside a sync), or too long */
        uint64_t answered;         /* commands the agent answered (a result or an error) */
        uint64_t answer_usec;      /* their total time from the first byte of their exchange
                                    * (the sync before them, if any) to the end of the answer */
} QgaStats;
/* Accepts NULL (all zero). */
void qga_client_get_stats(QgaClient *c, QgaStats *ret);

/* Diagnostics and tests: bytes allocated for input now, and the most ever. */
size_t qga_client_buffer_capacity(QgaClient *c);
size_t qga_client_buffer_peak(QgaClient *c);

DEFINE_TRIVIAL_CLEANUP_FUNC(QgaClient *, qga_client_free);
