/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asynchronous QMP client on an sd_event loop.
 *
 * Layers: framing (bounded line buffer, non-blocking writes) → classification
 * (greeting / event / reply) → requests (id, timeout, callback).
 *
 * Life cycle: qmp_client_new() takes a connected stream socket. The client
 * reads the greeting, records QEMU's version, sends qmp_capabilities and calls
 * on_ready. Requests submitted before that are queued and written once
 * negotiation succeeded (their timeouts run from submission). Greeting and
 * negotiation together must finish within QMP_DEFAULT_TIMEOUT_USEC. Every
 * request is answered exactly once: by its reply, by its timeout, or when the
 * connection ends. After on_disconnect the client is inert; the owner frees it.
 *
 * Every callback may call qmp_send(), qmp_cancel() and qmp_client_free() on the
 * same client, on_disconnect included. No callback runs from inside qmp_send(). */

#include <stdint.h>

#include <jansson.h>
#include "macro.h"
#include <systemd/sd-event.h>

/* One line from QEMU may be at most this long. A longer reply is dropped without
 * being buffered and fails its request with -EFBIG; when that request already timed
 * out or was cancelled, it is dropped all the same and nothing fails. Any other longer
 * line (greeting, negotiation, or with no reply owed at all) is a protocol error.
 * Nothing grows.
 *
 * Replies are matched by id; QEMU answers in order, so a reply that cannot be read (too
 * long) or that carries no id (an error from QEMU's parser, which the client's checked
 * lines should never cause) answers the oldest request not answered yet. Requests that
 * timed out or were cancelled are remembered until QEMU answers them, so that a late
 * reply never answers a later request. */
#define QMP_LINE_MAX (16U * 1024U * 1024U)
/* The longest command name sent (a QAPI name); anything else is never written. */
#define QMP_COMMAND_NAME_MAX 128U
/* Bytes queued for writing to QEMU at most (commands are small). */
#define QMP_OUTPUT_MAX (4U * 1024U * 1024U)
/* Requests in flight at most; more is -EBUSY. */
#define QMP_PENDING_MAX 1024U
#define QMP_DEFAULT_TIMEOUT_USEC (30U * 1000000U)

typedef struct QmpClient QmpClient;

/* Called once per request.
 * error == 0: success, result is the "return" value (borrowed, valid during the call).
 * error == -EREMOTEIO: QEMU answered with an error; err_class/err_desc are set (also
 *   for an error without an id when this is the oldest request not answered).
 * error == -ETIMEDOUT: no answer in time (a late reply is dropped).
 * error == -EFBIG: the reply was longer than QMP_LINE_MAX and was dropped.
 * error == -ECONNRESET: the connection ended (EOF, I/O error, protocol error, free).
 * error == -ECANCELED: the request was cancelled with qmp_cancel(). */
typedef void (*qmp_reply_cb_t)(QmpClient *c, int error, json_t *result, const char *err_class,
                               const char *err_desc, void *userdata);

typedef struct QmpCallbacks {
        /* Negotiation done; version is available. */
        void (*on_ready)(QmpClient *c, void *userdata);
        /* An event. data is borrowed ({} when QEMU sent none or a non-object), timestamp in
         * µs since the epoch (QEMU's; the current CLOCK_REALTIME when it is missing or garbled). */
        void (*on_event)(QmpClient *c, const char *name, json_t *data, uint64_t timestamp_usec,
                         void *userdata);
        /* The connection ended: error is 0 on clean EOF, -EPROTO on a protocol violation
         * (over-long line, bad JSON, bad greeting, failed negotiation, stream cut inside a
         * line), -ETIMEDOUT when greeting and negotiation took too long, else -errno (e.g.
         * -EPIPE). ECONNRESET on read counts as a clean EOF: it only means the peer closed
         * with our bytes unread (QEMU leaves the '\n' after "quit"). Pending requests have already been failed with
         * -ECONNRESET. Called at most once, never from qmp_client_free(). */
        void (*on_disconnect)(QmpClient *c, int error, void *userdata);
        /* QEMU did something it should not, and the client recovered: an error reply
         * without an id (QEMU could not read a request). what is a sanitized sentence
         * for the log. May be NULL. */
        void (*on_anomaly)(QmpClient *c, const char *what, void *userdata);
} QmpCallbacks;

/* Takes ownership of fd (a connected stream socket; set non-blocking here).
 * Returns 0 or -errno; on failure fd is closed. */
int qmp_client_new(sd_event *event, int fd, const QmpCallbacks *cb, void *userdata, QmpClient **ret);

/* Takes over a connection another client negotiated (a previous supervisor's, handed on by
 * the launcher): no greeting comes. The stream may hold the tail of a line the previous
 * owner half read, replies and events owed to it, and QEMU's parser may hold a request it
 * half wrote. The client writes one 0xFF byte (QEMU's lexer resets on it) and a
 * query-status with a fresh id, drops every line until that reply, then calls on_ready.
 * version (may be NULL) is what qmp_client_version() will report. Takes ownership of fd. */
int qmp_client_adopt(sd_event *event, int fd, const char *version, const QmpCallbacks *cb, void *userdata,
                     QmpClient **ret);

/* Fails every pending request with -ECONNRESET (callbacks run), closes the fd. Accepts NULL. */
QmpClient *qmp_client_free(QmpClient *c);

/* Submits {"execute": execute, "arguments": arguments, "id": <n>}, n random below 2^53. arguments may be NULL;
 * it is borrowed and serialized at once (empty arguments are left out). execute must be
 * a QAPI name (letters, digits, '-', '_', '.'). timeout_usec 0 means
 * QMP_DEFAULT_TIMEOUT_USEC. On success the callback (may be NULL) will run exactly once,
 * never from inside this call. Returns 0 and stores the request id in *ret_id (may be
 * NULL); -EINVAL for a bad name, non-object arguments or a line QEMU would read
 * differently from the object given (json_wire_check_line(): nested deeper than
 * JSON_WIRE_DEPTH_MAX, a noncharacter, ...), -ENOTCONN after disconnect,
 * -EBUSY when QMP_PENDING_MAX requests are in flight, -ENOBUFS when the output queue is
 * full, -ENOMEM. */
int qmp_send(QmpClient *c, const char *execute, json_t *arguments, uint64_t timeout_usec,
             qmp_reply_cb_t cb, void *userdata, uint64_t *ret_id);

/* Descriptors queued for QEMU at most (qmp_send_fd()); more is -ENOBUFS. */
#define QMP_FDS_MAX 16U

/* As qmp_send(), with fd (taken over, closed on failure too) passed as SCM_RIGHTS with the
 * command's first byte: for getfd and add-fd. */
int qmp_send_fd(QmpClient *c, const char *execute, json_t *arguments, int fd, uint64_t timeout_usec,
                qmp_reply_cb_t cb, void *userdata, uint64_t *ret_id);

/* Drops the request: its callback runs now with -ECANCELED (the command may still
 * execute in QEMU; its reply is ignored). Returns 0 or -ENOENT. */
int qmp_cancel(QmpClient *c, uint64_t id);

/* Version from the greeting ("7.2.22"), NULL before the greeting; kept after disconnect. */
const char *qmp_client_version(QmpClient *c);
/* True between on_ready and on_disconnect. */
bool qmp_client_is_ready(QmpClient *c);
/* Requests in flight (qmp_capabilities not counted). */
size_t qmp_client_pending(QmpClient *c);
/* Reads and handles, now, what QEMU has already written (never waits): for an owner that
 * learned QEMU has ended and wants its last events and replies first. May end the client
 * (on_disconnect) when the stream ended. */
void qmp_client_read_pending(QmpClient *c);

DEFINE_TRIVIAL_CLEANUP_FUNC(QmpClient *, qmp_client_free);
