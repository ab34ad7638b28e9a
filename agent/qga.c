/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "json-wire.h"
#include "linebuf.h"
#include "list.h"
#include "log.h"
#include "qga-file.h"
#include "qga.h"

/* A sync reply is about 30 bytes, the agent's complaint about our 0xFF about
 * 80. While no command waits for a reply, nothing longer is worth buffering. */
#define QGA_IDLE_LINE_MAX 256U
/* A reply to guest-file-write is a few dozen bytes. */
#define QGA_FILE_WRITE_REPLY_MAX (64U * 1024U)
/* guest-file-write data is encoded into the output this many bytes at a time (a
 * multiple of 3, so that only the last piece is padded): 64 KiB of base64. */
#define QGA_WRITE_PIECE (48U * 1024U)
#define QGA_TIMER_ACCURACY_USEC (1U * 1000U)
/* Reads per wakeup, so that a flooding guest cannot starve the rest of the loop. */
#define QGA_READS_PER_WAKEUP 16U
/* Sync ids stay below 2^53 so that every JSON implementation keeps them exact. */
#define QGA_SYNC_ID_MASK ((UINT64_C(1) << 53) - 1)

typedef enum QgaSyncState {
        QGA_UNSYNCED, /* the stream position is unknown: sync before the next command */
        QGA_SYNCING,  /* sync written; lines are discarded until {"return": sync_id} */
        QGA_SYNCED,   /* the next line from the agent answers the next command written */
} QgaSyncState;

typedef enum QgaCommandState {
        QGA_CMD_QUEUED,
        QGA_CMD_SENT,  /* being written or written: the next line is its reply */
        QGA_CMD_GRACE, /* QGA_REPLY_NONE, written completely: waiting out the grace */
        QGA_CMD_DONE,  /* outcome known, callback pending */
} QgaCommandState;

typedef struct QgaCommand QgaCommand;

/* A list.h list that counts its items. */
typedef struct QgaList {
        QgaCommand *head, *tail;
        size_t n;
} QgaList;

struct QgaCommand {
        QgaClient *client;
        QgaList *list; /* queue or done; NULL while in flight */
        LIST_FIELDS(QgaCommand);

        uint64_t id;
        uint64_t exchange_usec; /* CLOCK_MONOTONIC: at the head of the queue with the channel free */
        QgaCommandState state;
        QgaReplyMode mode;
        char *line; /* the serialized command with its '\n'; freed once written */
        size_t line_len;
        size_t max_reply;
        /* guest-file-read: where the data goes, and the count asked for. */
        void *read_buf;
        size_t read_size;
        /* guest-file-write: the data (borrowed), encoded piece by piece as the line is
         * written after its prefix (line); how much of it is, and whether the suffix is. */
        const uint8_t *write_data;
        size_t write_size, write_pos;
        bool write_suffix;
        sd_event_source *timer;
        qga_reply_cb_t cb;
        qga_text_cb_t text_cb; /* instead of cb: the result as text */
        void *userdata;

        int error;
        json_t *result;
        char *text; /* text_cb: the result written straight from the reply line */
        size_t text_len;
        char err_class[QGA_ERROR_CLASS_MAX + 1];
        char err_desc[QGA_ERROR_DESC_MAX + 1];
};

struct QgaClient {
        unsigned n_ref;
        bool freeing;
        sd_event *event;
        QgaCallbacks cb;
        void *userdata;

        int fd;
        sd_event_source *io;
        uint32_t io_events;
        QgaStats stats;
        /* Runs callbacks: the framing and sync layers never call out. */
        sd_event_source *defer;
        sd_event_source *sync_timer;

        QgaSyncMode sync_mode;
        uint64_t sync_timeout_usec;
        uint64_t grace_usec;
        QgaSyncState sync;
        bool sync_requested; /* qga_client_resync() while a command was in flight */
        uint64_t sync_id;
        char sync_id_str[24];
        char sync_line[128];

        bool connected;
        bool connected_reported;

        /* Input: lines up to '\n', reset by 0xFF, bounded by QGA_INPUT_BUFFER_MAX.
         * in_keep: a guest-file-read reply was just decoded; its memory is kept for the
         * next chunk (not faulted in afresh each time) until a command of another kind
         * is written or the channel closes. */
        LineBuf in;
        bool in_keep;

        /* Output: the bytes of one exchange, a sync request or one command (or one piece
         * of it: guest-file-write's data goes out through out_stage). */
        const char *out;
        size_t out_len, out_off;
        QgaCommand *out_cmd;
        char *out_stage;

        QgaList queue, done;
        QgaCommand *active;
        uint64_t next_id;
};

static size_t size_min(size_t a, size_t b) {
        return a < b ? a : b;
}

static void qga_list_append(QgaList *l, QgaCommand *cmd) {
        cmd->list = l;
        LIST_APPEND(l, cmd);
        l->n++;
}

static void qga_list_remove(QgaCommand *cmd) {
        QgaList *l = cmd->list;

        if (!l)
                return;
        LIST_REMOVE(l, cmd);
        cmd->list = NULL;
        l->n--;
}

static QgaCommand *qga_command_free(QgaCommand *cmd) {
        if (!cmd)
                return NULL;
        sd_event_source_disable_unref(cmd->timer);
        json_decref(cmd->result);
        free(cmd->text);
        free(cmd->line);
        free(cmd);
        return NULL;
}


static void qga_client_release(QgaClient *c);

static void qga_client_ref(QgaClient *c) {
        c->n_ref++;
}

static void qga_client_unref(QgaClient *c) {
        if (--c->n_ref == 0)
                qga_client_release(c);
}

static void qga_kick(QgaClient *c) {
        if (c->defer)
                (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
}

static void qga_set_connected(QgaClient *c, bool connected) {
        c->connected = connected;
        if (connected != c->connected_reported)
                qga_kick(c);
}

/* The stream position is no longer known; a sync already under way stays valid. */
static void qga_desync(QgaClient *c) {
        if (c->sync == QGA_SYNCED)
                c->sync = QGA_UNSYNCED;
}

/* ---- framing: output ---- */

static void qga_update_io_events(QgaClient *c) {
        uint32_t events = EPOLLIN | (c->out ? EPOLLOUT : 0);
        int r;

        if (!c->io || events == c->io_events)
                return;
        r = sd_event_source_set_io_events(c->io, events);
        if (r < 0) {
                log_debug_errno(r, "QGA: failed to update I/O events, ignoring: %m");
                return;
        }
        c->io_events = events;
}

static void qga_output_clear(QgaClient *c) {
        c->out = NULL;
        c->out_len = c->out_off = 0;
        c->out_cmd = NULL;
}

static void qga_output_set(QgaClient *c, const char *data, size_t len, QgaCommand *cmd) {
        c->out = data;
        c->out_len = len;
        c->out_off = 0;
        c->out_cmd = cmd;
}

/* ---- commands: outcome ---- */

/* Takes cmd out of the queue or the in-flight slot and stops its timer and any
 * write of it. A command cut off mid-write is finished off by the 0xFF that
 * starts the next sync: the agent drops what it had parsed. */
static void qga_command_unlink(QgaClient *c, QgaCommand *cmd) {
        if (cmd == c->active)
                c->active = NULL;
        qga_list_remove(cmd);
        cmd->timer = sd_event_source_disable_unref(cmd->timer);
        if (c->out_cmd == cmd) {
                if (c->out_off > 0 || cmd->write_pos > 0 || cmd->write_suffix)
                        qga_desync(c);
                qga_output_clear(c);
                qga_update_io_events(c);
        }
        free(cmd->line);
        cmd->line = NULL;
}

static void qga_command_set_outcome(QgaCommand *cmd, int error, json_t *result) {
        cmd->state = QGA_CMD_DONE;
        cmd->error = error;
        json_decref(cmd->result);
        cmd->result = error == 0 ? result : NULL;
        if (error != 0)
                json_decref(result);
}

/* Records the outcome (taking the reference on result); the callback runs from the defer source. */
static void qga_command_finish(QgaClient *c, QgaCommand *cmd, int error, json_t *result) {
        if (cmd->exchange_usec > 0 && IN_SET(error, 0, -EREMOTEIO) && cmd->state == QGA_CMD_SENT) {
                c->stats.answered++;
                c->stats.answer_usec += now_usec(CLOCK_MONOTONIC) - cmd->exchange_usec;
        }
        qga_command_unlink(c, cmd);
        if (error == 0 && !result && !cmd->text) {
                result = json_object(); /* commands without a reply */
                if (!result)
                        error = -ENOMEM;
        }
        qga_command_set_outcome(cmd, error, result);
        qga_list_append(&c->done, cmd);
        qga_kick(c);
}

/* Runs the callback of an unlinked, finished command and frees it. */
static void qga_command_deliver(QgaClient *c, QgaCommand *cmd) {
        bool remote = cmd->error == -EREMOTEIO;

        if (cmd->text_cb) {
                if (cmd->error == 0 && !cmd->text) {
                        /* The reply went through jansson, or there was none ({}). */
                        cmd->text = cmd->result ? json_dumps(cmd->result, JSON_COMPACT | JSON_ENCODE_ANY |
                                                                                  JSON_ENSURE_ASCII)
                                                : strdup("{}");
                        if (cmd->text)
                                cmd->text_len = strlen(cmd->text);
                        else
                                cmd->error = -ENOMEM;
                }
                cmd->text_cb(c, cmd->error, cmd->error == 0 ? cmd->text : NULL, cmd->error == 0 ? cmd->text_len : 0,
                             remote ? cmd->err_class : NULL, remote ? cmd->err_desc : NULL, cmd->userdata);
        } else if (cmd->cb)
                cmd->cb(c, cmd->error, cmd->error == 0 ? cmd->result : NULL, remote ? cmd->err_class : NULL,
                        remote ? cmd->err_desc : NULL, cmd->userdata);
        qga_command_free(cmd);
}

/* The command in flight ends without a reply: a QGA_REPLY_NONE command past its
 * write did what it was asked (the agent may well be gone now). */
static void qga_command_abandon(QgaClient *c, QgaCommand *cmd, int error) {
        if (cmd->state == QGA_CMD_GRACE)
                error = 0;
        qga_command_finish(c, cmd, error, NULL);
}

/* ---- channel ---- */

static void qga_input_free(QgaClient *c) {
        linebuf_free(&c->in);
        c->in_keep = false;
}

/* After a long line, give the memory back, unless the next file chunk needs it. */
static void qga_input_shrink(QgaClient *c) {
        if (!c->in_keep)
                linebuf_shrink(&c->in);
}

static void qga_channel_close(QgaClient *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->io_events = 0;
        c->fd = safe_close(c->fd);
        c->sync = QGA_UNSYNCED;
        c->sync_requested = false;
        if (c->sync_timer)
                (void) sd_event_source_set_enabled(c->sync_timer, SD_EVENT_OFF);
        qga_output_clear(c);
        qga_input_free(c);
        qga_set_connected(c, false);
}

/* EOF, I/O error or detach: the command in flight (and, if fail_queued, the queued ones) fail. */
static void qga_channel_lost(QgaClient *c, bool fail_queued) {
        QgaCommand *cmd;

        qga_channel_close(c);
        if (c->active)
                qga_command_abandon(c, c->active, -ENOTCONN);
        if (fail_queued)
                while ((cmd = c->queue.head))
                        qga_command_finish(c, cmd, -ENOTCONN, NULL);
}

static void qga_command_written(QgaClient *c, QgaCommand *cmd) {
        uint64_t deadline, grace_end;

        free(cmd->line); /* a WriteFile chunk is 64 MiB: do not keep it until the reply */
        cmd->line = NULL;

        if (cmd->mode != QGA_REPLY_NONE || cmd->state != QGA_CMD_SENT)
                return;
        cmd->state = QGA_CMD_GRACE;
        grace_end = now_usec(CLOCK_MONOTONIC) + c->grace_usec;
        if (sd_event_source_get_time(cmd->timer, &deadline) >= 0 && grace_end < deadline)
                (void) sd_event_source_set_time(cmd->timer, grace_end);
}

/* The next piece of a guest-file-write once the previous one is out: its data in
 * base64, then the end of the line. False when the exchange is complete. */
static bool qga_output_refill(QgaClient *c) {
        QgaCommand *cmd = c->out_cmd;
        size_t n, len;

        if (!cmd || !cmd->write_data || cmd->write_suffix)
                return false;
        if (cmd->write_pos < cmd->write_size) {
                if (!c->out_stage) {
                        c->out_stage = malloc(qga_b64_encoded_size(QGA_WRITE_PIECE));
                        if (!c->out_stage)
                                return false; /* retried on the next EPOLLOUT */
                }
                n = size_min(cmd->write_size - cmd->write_pos, QGA_WRITE_PIECE);
                /* Cannot fail: the stage holds a full piece. */
                (void) qga_b64_encode(cmd->write_data + cmd->write_pos, n, c->out_stage,
                                      qga_b64_encoded_size(QGA_WRITE_PIECE), &len);
                cmd->write_pos += n;
                c->out = c->out_stage;
        } else {
                cmd->write_suffix = true;
                c->out = QGA_FILE_WRITE_SUFFIX;
                len = strlen(QGA_FILE_WRITE_SUFFIX);
        }
        c->out_len = len;
        c->out_off = 0;
        return true;
}

/* Whether the output holds the whole exchange written. */
static bool qga_output_done(QgaClient *c) {
        QgaCommand *cmd = c->out_cmd;

        return c->out_off >= c->out_len && (!cmd || !cmd->write_data || cmd->write_suffix);
}

static void qga_flush(QgaClient *c) {
        while (c->out && (c->out_off < c->out_len || qga_output_refill(c))) {
                const char *p = c->out + c->out_off;
                size_t n = c->out_len - c->out_off;
                ssize_t k;

                k = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0 && errno == ENOTSOCK)
                        k = write(c->fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        log_debug_errno(errno, "QGA: write failed: %m");
                        qga_channel_lost(c, true);
                        return;
                }
                if (k == 0)
                        break;
                c->out_off += (size_t) k;
        }

        if (c->out && qga_output_done(c)) {
                QgaCommand *cmd = c->out_cmd;

                qga_output_clear(c);
                if (cmd)
                        qga_command_written(c, cmd);
        }
        qga_update_io_events(c);
}

/* ---- framing: input ---- */

/* Drops the partial line, and the rest of it as it arrives (never called while
 * the buffer is being processed), and gives the memory back. */
static void qga_input_drop_line(QgaClient *c) {
        linebuf_drop_partial(&c->in);
        qga_input_shrink(c);
}

static bool qga_input_quiet(QgaClient *c) {
        int n = 0;

        if (linebuf_pending(&c->in) > 0 || linebuf_dropping(&c->in))
                return false;
        if (ioctl(c->fd, FIONREAD, &n) < 0)
                return true; /* cannot tell; whatever comes is still only a reply */
        return n == 0;
}

/* The longest line worth buffering now. */
static size_t qga_line_limit(QgaClient *c) {
        if (c->active)
                return c->active->max_reply;
        return QGA_IDLE_LINE_MAX;
}

/* A line longer than the limit (complete, or cut off while arriving). error 0:
 * -EFBIG if the command asked for less than QGA_LINE_MAX, else -EPROTO. */
static void qga_line_rejected(QgaClient *c, int error) {
        QgaCommand *cmd = c->active;

        qga_desync(c);
        if (!cmd)
                return; /* a stale reply or chatter: nobody waits for it */
        if (error == 0)
                error = cmd->max_reply < QGA_LINE_MAX ? -EFBIG : -EPROTO;
        log_debug_errno(error, "QGA: over-long reply line: %m");
        if (error == -EPROTO)
                qga_set_connected(c, false);
        qga_command_finish(c, cmd, error, NULL);
}

/* Rough count of the JSON values a line would become (containers and
 * separators outside strings); true once it exceeds max. Linear: string bodies
 * are skipped with memchr. */
static bool qga_json_too_many_values(const char *s, size_t len, size_t max) {
        const char *end = s + len;
        size_t n = 0;

        while (s < end) {
                char ch = *s++;

                if (ch == '"') {
                        for (;;) {
                                const char *q = memchr(s, '"', (size_t) (end - s));
                                size_t backslashes = 0;

                                if (!q)
                                        return false; /* unterminated: the parser refuses it */
                                for (const char *b = q; b > s && b[-1] == '\\'; b--)
                                        backslashes++;
                                s = q + 1;
                                if (backslashes % 2 == 0)
                                        break;
                        }
                } else if (ch == '{' || ch == '[' || ch == ',') {
                        if (++n > max)
                                return true;
                }
        }
        return false;
}

static void qga_protocol_error(QgaClient *c, QgaCommand *cmd) {
        c->stats.protocol_errors++;
        log_debug("QGA: malformed reply to command %" PRIu64 ", re-syncing.", cmd->id);
        qga_set_connected(c, false);
        qga_desync(c);
        qga_command_finish(c, cmd, -EPROTO, NULL);
}

static void qga_file_read_finish(QgaClient *c, QgaCommand *cmd, bool resync, size_t n, bool eof) {
        json_t *r = json_pack("{s:I,s:b}", "count", (json_int_t) n, "eof", eof);

        if (resync)
                qga_desync(c);
        c->in_keep = true;
        qga_command_finish(c, cmd, r ? 0 : -ENOMEM, r);
}

static void qga_handle_reply(QgaClient *c, QgaCommand *cmd, const char *line, size_t len) {
        /* Answered before we finished writing it, or the agent may be going away: re-sync. */
        bool resync = cmd->state == QGA_CMD_GRACE || c->out_cmd == cmd;
        json_auto_t *v = NULL;
        json_t *ret, *err, *cls, *desc;
        size_t n;
        bool eof;

        /* guest-file-read's data, decoded where it lies: no JSON string of up to 64 MiB. */
        if (cmd->read_buf && qga_file_read_scan(line, len, cmd->read_buf, cmd->read_size, &n, &eof) > 0) {
                qga_file_read_finish(c, cmd, resync, n, eof);
                return;
        }

        if (qga_json_too_many_values(line, len, QGA_REPLY_VALUES_MAX)) {
                log_debug("QGA: reply to command %" PRIu64 " has too many values.", cmd->id);
                qga_desync(c);
                qga_command_finish(c, cmd, -EFBIG, NULL);
                return;
        }

        /* Wanted as text, a plain {"return": ...}: written straight from the line. */
        if (cmd->text_cb && !cmd->read_buf) {
                char *text = NULL;
                size_t text_len = 0;
                int r = json_wire_reply_return(line, len, &text, &text_len);

                if (r != 0) {
                        if (resync)
                                qga_desync(c);
                        cmd->text = text;
                        cmd->text_len = text_len;
                        qga_command_finish(c, cmd, r < 0 ? r : 0, NULL);
                        return;
                }
        }

        v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(v) || json_object_size(v) != 1) {
                qga_protocol_error(c, cmd);
                return;
        }

        ret = json_object_get(v, "return");
        if (ret && cmd->read_buf) {
                if (qga_file_read_parse(ret, cmd->read_buf, cmd->read_size, &n, &eof) >= 0)
                        qga_file_read_finish(c, cmd, resync, n, eof);
                else {
                        /* Well-formed, but not the data asked for: no protocol error. */
                        if (resync)
                                qga_desync(c);
                        qga_command_finish(c, cmd, -EBADMSG, NULL);
                }
                return;
        }
        if (ret) {
                if (resync)
                        qga_desync(c);
                qga_command_finish(c, cmd, 0, json_incref(ret));
                return;
        }

        err = json_object_get(v, "error");
        cls = json_object_get(err, "class");
        desc = json_object_get(err, "desc");
        if (!json_is_object(err) || !json_is_string(cls) || !json_is_string(desc)) {
                qga_protocol_error(c, cmd);
                return;
        }

        if (resync)
                qga_desync(c);
        /* Guest text for a caller: printable ASCII only, truncated with "...". */
        text_sanitize(cmd->err_class, sizeof cmd->err_class, json_string_value(cls), json_string_length(cls),
                      TEXT_MARK_CUT);
        text_sanitize(cmd->err_desc, sizeof cmd->err_desc, json_string_value(desc), json_string_length(desc),
                      TEXT_MARK_CUT);
        qga_command_finish(c, cmd, -EREMOTEIO, NULL);
}

static bool qga_line_is_sync_reply(QgaClient *c, const char *line, size_t len) {
        json_auto_t *v = NULL;
        json_t *ret;

        /* Most lines seen while syncing are junk: no need to parse those. */
        if (!memmem(line, len, c->sync_id_str, strlen(c->sync_id_str)))
                return false;
        v = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(v) || json_object_size(v) != 1)
                return false;
        ret = json_object_get(v, "return");
        return json_is_integer(ret) && json_integer_value(ret) > 0 &&
               (uint64_t) json_integer_value(ret) == c->sync_id;
}

static void qga_handle_sync_line(QgaClient *c, const char *line, size_t len) {
        /* The agent cannot answer a request it has not read completely. */
        if (c->out && !c->out_cmd)
                return;
        if (!qga_line_is_sync_reply(c, line, len))
                return; /* stale replies, the agent's complaint about our 0xFF, garbage */

        log_debug("QGA: sync %" PRIu64 " answered.", c->sync_id);
        c->sync = QGA_SYNCED;
        (void) sd_event_source_set_enabled(c->sync_timer, SD_EVENT_OFF);
        qga_set_connected(c, true);
}

/* One complete line. Changes state only: no I/O, no callbacks, the buffer stays put. */
static void qga_handle_line(QgaClient *c, const char *line, size_t len) {
        if (len > qga_line_limit(c)) {
                c->stats.dropped_lines++;
                qga_line_rejected(c, 0);
        } else if (c->active)
                qga_handle_reply(c, c->active, line, len);
        else if (c->sync == QGA_SYNCING)
                qga_handle_sync_line(c, line, len);
        else {
                c->stats.dropped_lines++;
                qga_desync(c); /* nobody asked: a late reply or chatter must not answer the next command */
        }
}

static void qga_input_process(QgaClient *c) {
        for (;;) {
                const char *line;
                size_t len;

                /* The limit is asked again each time: a line handled may end the command. */
                switch (linebuf_next(&c->in, qga_line_limit(c), &line, &len)) {
                case LINEBUF_LINE:
                        qga_handle_line(c, line, len);
                        break;
                case LINEBUF_DROPPED:
                        break;
                case LINEBUF_TOO_LONG:
                        /* Not buffered any further: the rest is dropped as it arrives. */
                        qga_line_rejected(c, 0);
                        return;
                case LINEBUF_NONE:
                        return;
                }
        }
}

/* ---- sync and dispatch ---- */

static uint64_t qga_new_sync_id(QgaClient *c) {
        uint64_t v;

        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t) sizeof v)
                /* Early boot: ids need to differ from earlier ones, not to be secret. */
                v = (now_usec(CLOCK_MONOTONIC) ^ ((uint64_t) getpid() << 32) ^ c->sync_id) *
                    UINT64_C(0x9E3779B97F4A7C15);
        v &= QGA_SYNC_ID_MASK;
        if (v == 0 || v == c->sync_id)
                v = (c->sync_id & QGA_SYNC_ID_MASK) % QGA_SYNC_ID_MASK + 1;
        return v;
}

static void qga_sync_start(QgaClient *c) {
        int n, r;

        c->sync_id = qga_new_sync_id(c);
        c->sync_requested = false;
        c->stats.syncs++;
        (void) snprintf(c->sync_id_str, sizeof c->sync_id_str, "%" PRIu64, c->sync_id);
        n = snprintf(c->sync_line, sizeof c->sync_line,
                     "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%" PRIu64 "}}\n",
                     c->sync_id);
        c->sync = QGA_SYNCING;
        log_debug("QGA: sync %" PRIu64 " sent.", c->sync_id);

        /* The agent answers with 0xFF first, which would end a partial line anyway. */
        qga_input_drop_line(c);

        r = sd_event_source_set_time_relative(c->sync_timer, c->sync_timeout_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->sync_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "QGA: failed to arm the sync timer, ignoring: %m");

        qga_output_set(c, c->sync_line, (size_t) n, NULL);
        qga_flush(c);
}

/* Moves the queue along: sync first if needed, then write the head command. */
static void qga_dispatch(QgaClient *c) {
        QgaCommand *cmd = c->queue.head;

        if (c->freeing || c->fd < 0 || c->active || c->sync == QGA_SYNCING)
                return;
        if (c->sync_requested) {
                qga_sync_start(c);
                return;
        }
        if (!cmd)
                return;
        if (cmd->exchange_usec == 0)
                cmd->exchange_usec = now_usec(CLOCK_MONOTONIC); /* its sync, if one is needed, starts now */
        /* Anything that arrived after the sync reply voids it. */
        if (c->sync == QGA_SYNCED && !qga_input_quiet(c))
                c->sync = QGA_UNSYNCED;
        if (c->sync == QGA_UNSYNCED) {
                qga_sync_start(c);
                return;
        }

        qga_list_remove(cmd);
        c->active = cmd;
        cmd->state = QGA_CMD_SENT;
        if (!cmd->read_buf && c->in_keep) {
                c->in_keep = false;
                linebuf_shrink(&c->in);
        }
        if (c->sync_mode == QGA_SYNC_EACH_COMMAND)
                c->sync = QGA_UNSYNCED; /* this sync is spent */
        qga_output_set(c, cmd->line, cmd->line_len, cmd);
        qga_flush(c);
}

static void qga_read(QgaClient *c) {
        for (unsigned i = 0; i < QGA_READS_PER_WAKEUP && c->fd >= 0; i++) {
                /* Short lines fit the small buffer; a long one gets large reads. */
                size_t held = linebuf_pending(&c->in);
                size_t want = held < QGA_READ_CHUNK_MIN / 2 ? QGA_READ_CHUNK_MIN - held : QGA_READ_CHUNK_MAX;
                size_t space;
                char *p;
                ssize_t n;
                int r;

                r = linebuf_reserve(&c->in, want, &p, &space);
                if (r < 0) {
                        if (held == 0) {
                                log_debug_errno(r, "QGA: cannot allocate the input buffer: %m");
                                qga_channel_lost(c, true);
                                return;
                        }
                        qga_input_drop_line(c);
                        qga_line_rejected(c, r);
                        continue;
                }

                n = read(c->fd, p, space);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        log_debug_errno(errno, "QGA: read failed: %m");
                        qga_channel_lost(c, true);
                        return;
                }
                if (n == 0) {
                        log_debug("QGA: channel closed by the peer.");
                        qga_channel_lost(c, true);
                        return;
                }

                /* The agent only speaks when spoken to. */
                if (c->sync == QGA_SYNCED && !c->active)
                        c->sync = QGA_UNSYNCED;

                linebuf_commit(&c->in, (size_t) n);
                qga_input_process(c);
                if ((size_t) n < space)
                        break;
        }

        qga_input_shrink(c);
        qga_dispatch(c);
}

/* ---- event sources ---- */

static int qga_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QgaClient *c = userdata;

        if (revents & EPOLLOUT) {
                qga_flush(c);
                if (c->fd < 0)
                        return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                qga_read(c);
        return 0;
}

static int qga_on_sync_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        QgaClient *c = userdata;

        if (c->sync != QGA_SYNCING)
                return 0;
        log_debug("QGA: sync %" PRIu64 " timed out.", c->sync_id);
        c->stats.sync_timeouts++;
        c->sync = QGA_UNSYNCED;
        qga_set_connected(c, false);
        /* The agent does not answer: the command that waited for this sync fails,
         * later ones get a sync of their own (within their own timeouts). */
        if (c->queue.head)
                qga_command_finish(c, c->queue.head, -ETIMEDOUT, NULL);
        qga_dispatch(c);
        return 0;
}

static int qga_on_command_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QgaCommand *cmd = userdata;
        QgaClient *c = cmd->client;

        switch (cmd->state) {
        case QGA_CMD_GRACE:
                qga_desync(c);
                qga_command_finish(c, cmd, 0, NULL);
                break;
        case QGA_CMD_SENT:
                c->stats.command_timeouts++;
                log_debug("QGA: command %" PRIu64 " timed out.", cmd->id);
                /* A late reply must not answer the next command. */
                qga_desync(c);
                qga_input_drop_line(c);
                qga_command_finish(c, cmd, -ETIMEDOUT, NULL);
                break;
        default:
                c->stats.command_timeouts++;
                qga_command_finish(c, cmd, -ETIMEDOUT, NULL);
        }
        qga_dispatch(c);
        return 0;
}

static int qga_on_defer(sd_event_source *s, void *userdata) {
        QgaClient *c = userdata;
        size_t n;

        qga_client_ref(c);

        if (!c->freeing && c->connected != c->connected_reported) {
                c->connected_reported = c->connected;
                if (c->cb.on_connected_changed)
                        c->cb.on_connected_changed(c, c->connected_reported, c->userdata);
        }

        /* Only what is done now; commands finished by callbacks wait for the next turn. */
        for (n = c->done.n; n > 0 && !c->freeing && c->done.head; n--) {
                QgaCommand *cmd = c->done.head;

                qga_list_remove(cmd);
                qga_command_deliver(c, cmd);
        }
        if (!c->freeing && c->done.head)
                qga_kick(c);

        qga_client_unref(c);
        return 0;
}

/* ---- public API ---- */

int qga_client_new(sd_event *event, const QgaCallbacks *cb, void *userdata, QgaClient **ret) {
        _cleanup_(qga_client_freep) QgaClient *c = NULL;
        int r;

        if (!event || !ret)
                return -EINVAL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->fd = -EBADF;
        c->event = sd_event_ref(event);
        if (cb)
                c->cb = *cb;
        c->userdata = userdata;
        c->sync_mode = QGA_SYNC_EACH_COMMAND;
        c->sync_timeout_usec = QGA_SYNC_TIMEOUT_USEC;
        c->grace_usec = QGA_REPLY_NONE_GRACE_USEC;
        linebuf_init(&c->in, QGA_READ_CHUNK_MIN, QGA_READ_CHUNK_MIN, QGA_INPUT_BUFFER_MAX, LINEBUF_RESET_FF);

        r = sd_event_add_defer(event, &c->defer, qga_on_defer, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->defer, "qga-callbacks");

        r = sd_event_add_time(event, &c->sync_timer, CLOCK_MONOTONIC, UINT64_MAX, QGA_TIMER_ACCURACY_USEC,
                              qga_on_sync_timeout, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(c->sync_timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->sync_timer, "qga-sync-timer");

        *ret = TAKE_PTR(c);
        return 0;
}

static void qga_client_release(QgaClient *c) {
        qga_channel_close(c);
        free(c->out_stage);
        c->defer = sd_event_source_disable_unref(c->defer);
        c->sync_timer = sd_event_source_disable_unref(c->sync_timer);
        sd_event_unref(c->event);
        free(c);
}

QgaClient *qga_client_free(QgaClient *c) {
        if (!c || c->freeing)
                return NULL;
        c->freeing = true;
        qga_channel_close(c);

        /* Callbacks may cancel other commands: take one at a time from the lists. */
        for (;;) {
                QgaCommand *cmd;

                if ((cmd = c->done.head))
                        qga_list_remove(cmd);
                else if ((cmd = c->active)) {
                        int error = cmd->state == QGA_CMD_GRACE ? 0 : -ECANCELED;

                        qga_command_unlink(c, cmd);
                        qga_command_set_outcome(cmd, error, error == 0 ? json_object() : NULL);
                        if (error == 0 && !cmd->result)
                                cmd->error = -ENOMEM;
                } else if ((cmd = c->queue.head)) {
                        qga_command_unlink(c, cmd);
                        qga_command_set_outcome(cmd, -ECANCELED, NULL);
                } else
                        break;
                qga_command_deliver(c, cmd);
        }

        qga_client_unref(c);
        return NULL;
}

int qga_client_attach(QgaClient *c, int fd, bool sync_now) {
        _cleanup_close_ int fd_owned = fd;
        int flags, r;

        if (!c || fd < 0)
                return -EINVAL;
        if (c->freeing)
                return -ENOTCONN;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        /* The supervisor forks QEMU: the guest's channel must not leak into it. */
        flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                return -errno;

        if (c->fd >= 0)
                qga_channel_lost(c, false);

        r = sd_event_add_io(c->event, &c->io, fd, EPOLLIN, qga_on_io, c);
        if (r < 0) {
                while (c->queue.head)
                        qga_command_finish(c, c->queue.head, -ENOTCONN, NULL);
                return r;
        }
        (void) sd_event_source_set_description(c->io, "qga-io");
        c->io_events = EPOLLIN;
        c->fd = TAKE_FD(fd_owned);
        c->sync = QGA_UNSYNCED;
        log_debug("QGA: channel attached.");

        if (sync_now)
                qga_sync_start(c);
        else
                qga_dispatch(c);
        return 0;
}

void qga_client_detach(QgaClient *c) {
        if (!c || c->freeing)
                return;
        log_debug("QGA: channel detached.");
        qga_channel_lost(c, true);
}

int qga_client_resync(QgaClient *c) {
        if (!c)
                return -EINVAL;
        if (c->freeing || c->fd < 0)
                return -ENOTCONN;

        /* A sync under way may have gone to a previous agent instance: start over. */
        if (c->sync == QGA_SYNCING)
                (void) sd_event_source_set_enabled(c->sync_timer, SD_EVENT_OFF);
        c->sync = QGA_UNSYNCED;
        /* Whoever answers now may be another agent, or none: connected again only once
         * the new sync is answered. Without this, an agent that restarted while
         * connected would never be reported as back. */
        qga_set_connected(c, false);
        if (c->active)
                c->sync_requested = true;
        else
                qga_sync_start(c);
        return 0;
}

static int qga_can_queue(QgaClient *c) {
        if (c->freeing || c->fd < 0)
                return -ENOTCONN;
        if (c->queue.n + (c->active ? 1 : 0) > QGA_QUEUE_MAX)
                return -EBUSY;
        return 0;
}

/* Takes ownership of line ('\n'-terminated, len includes the newline). */
static int qga_enqueue(QgaClient *c, char *line, size_t len, QgaReplyMode mode, uint64_t timeout_usec,
                       size_t max_reply_bytes, void *read_buf, size_t read_size, const void *write_data,
                       size_t write_size, qga_reply_cb_t cb, qga_text_cb_t text_cb, void *userdata,
                       uint64_t *ret_id) {
        _cleanup_free_ char *l = line;
        QgaCommand *cmd;
        int r;

        r = qga_can_queue(c);
        if (r < 0)
                return r;

        cmd = calloc(1, sizeof *cmd);
        if (!cmd)
                return -ENOMEM;
        cmd->client = c;
        cmd->state = QGA_CMD_QUEUED;
        cmd->mode = mode;
        cmd->line = TAKE_PTR(l);
        cmd->line_len = len;
        cmd->max_reply = max_reply_bytes == 0 ? QGA_LINE_MAX : size_min(max_reply_bytes, QGA_LINE_MAX);
        cmd->read_buf = read_buf;
        cmd->read_size = read_size;
        cmd->write_data = write_data;
        cmd->write_size = write_size;
        cmd->cb = cb;
        cmd->text_cb = text_cb;
        cmd->userdata = userdata;

        r = sd_event_add_time_relative(c->event, &cmd->timer, CLOCK_MONOTONIC,
                                       timeout_usec > 0 ? timeout_usec : QGA_DEFAULT_TIMEOUT_USEC,
                                       QGA_TIMER_ACCURACY_USEC, qga_on_command_timer, cmd);
        if (r < 0) {
                qga_command_free(cmd);
                return r;
        }
        (void) sd_event_source_set_description(cmd->timer, "qga-command-timer");

        cmd->id = ++c->next_id;
        qga_list_append(&c->queue, cmd);
        if (ret_id)
                *ret_id = cmd->id;

        qga_dispatch(c);
        return 0;
}

static int qga_send_internal(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode,
                             uint64_t timeout_usec, size_t max_reply_bytes, qga_reply_cb_t cb, qga_text_cb_t text_cb,
                             void *userdata, uint64_t *ret_id) {
        _cleanup_free_ char *line = NULL;
        json_auto_t *o = NULL;
        json_t *name;
        size_t len;
        char *p;
        int r;

        if (!c || !execute || !*execute)
                return -EINVAL;
        if (mode != QGA_REPLY_NORMAL && mode != QGA_REPLY_NONE)
                return -EINVAL;
        if (arguments && !json_is_object(arguments))
                return -EINVAL;
        if (streq(execute, "guest-sync") || streq(execute, "guest-sync-delimited"))
                return -EPERM;
        r = qga_can_queue(c);
        if (r < 0)
                return r;

        o = json_object();
        if (!o)
                return -ENOMEM;
        name = json_string(execute);
        if (!name)
                return -EINVAL; /* not UTF-8 */
        if (json_object_set_new(o, "execute", name) < 0)
                return -ENOMEM;
        if (arguments && json_object_set(o, "arguments", arguments) < 0)
                return -ENOMEM;

        line = json_dumps(o, JSON_COMPACT);
        if (!line)
                return -ENOMEM;
        len = strlen(line);
        /* jansson escapes control characters and only holds UTF-8, so neither can
         * occur; a newline or 0xFF would split or reset the agent's parser. */
        if (memchr(line, '\n', len) || memchr(line, 0xFF, len))
                return -EINVAL;
        if (len + 1 > QGA_COMMAND_MAX)
                return -EMSGSIZE;
        /* qemu-ga reads with QEMU's parser: what it would split, reset on or refuse
         * without answering the command does not leave (json-wire.h). */
        r = json_wire_check_line(line, len, JSON_WIRE_DEPTH_MAX);
        if (r < 0) {
                log_debug_errno(r, "QGA: refusing to send %s: %m", execute);
                return -EINVAL;
        }

        p = realloc(line, len + 2);
        if (!p)
                return -ENOMEM;
        line = p;
        line[len] = '\n';
        line[len + 1] = '\0';

        return qga_enqueue(c, TAKE_PTR(line), len + 1, mode, timeout_usec, max_reply_bytes, NULL, 0, NULL, 0, cb,
                           text_cb, userdata, ret_id);
}

int qga_send(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode, uint64_t timeout_usec,
             size_t max_reply_bytes, qga_reply_cb_t cb, void *userdata, uint64_t *ret_id) {
        return qga_send_internal(c, execute, arguments, mode, timeout_usec, max_reply_bytes, cb, NULL, userdata,
                                 ret_id);
}

int qga_send_text(QgaClient *c, const char *execute, json_t *arguments, QgaReplyMode mode, uint64_t timeout_usec,
                  size_t max_reply_bytes, qga_text_cb_t cb, void *userdata, uint64_t *ret_id) {
        return qga_send_internal(c, execute, arguments, mode, timeout_usec, max_reply_bytes, NULL, cb, userdata,
                                 ret_id);
}

int qga_send_file_write(QgaClient *c, int64_t handle, const void *data, size_t size, uint64_t timeout_usec,
                        qga_reply_cb_t cb, void *userdata, uint64_t *ret_id) {
        char *prefix;
        int n, r;

        if (!c || (!data && size > 0) || handle < 0)
                return -EINVAL;
        if (size > QGA_FILE_WRITE_CHUNK_MAX)
                return -EMSGSIZE;
        r = qga_can_queue(c);
        if (r < 0)
                return r;

        /* The line is the prefix; the data follows in base64 as the agent reads it. */
        n = asprintf(&prefix, QGA_FILE_WRITE_PREFIX, handle, size);
        if (n < 0)
                return -ENOMEM;
        return qga_enqueue(c, prefix, (size_t) n, QGA_REPLY_NORMAL, timeout_usec, QGA_FILE_WRITE_REPLY_MAX, NULL, 0,
                           size > 0 ? data : "", size, cb, NULL, userdata, ret_id);
}

int qga_send_file_read(QgaClient *c, int64_t handle, size_t count, void *buf, uint64_t timeout_usec,
                       qga_reply_cb_t cb, void *userdata, uint64_t *ret_id) {
        char *line;
        int n, r;

        if (!c || handle < 0 || (!buf && count > 0))
                return -EINVAL;
        if (count > QGA_FILE_READ_CHUNK_MAX)
                return -EMSGSIZE;
        r = qga_can_queue(c);
        if (r < 0)
                return r;

        n = asprintf(&line, "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":%" PRIi64
                     ",\"count\":%zu}}\n", handle, count);
        if (n < 0)
                return -ENOMEM;

        /* A zero-byte read still gets a buffer the decoder may point at. */
        return qga_enqueue(c, line, (size_t) n, QGA_REPLY_NORMAL, timeout_usec,
                           qga_b64_encoded_size(count) + QGA_FILE_READ_REPLY_SLACK, buf ?: (void *) c, count, NULL,
                           0, cb, NULL, userdata, ret_id);
}

static QgaCommand *qga_find(QgaClient *c, uint64_t id) {
        QgaCommand *cmd;

        if (c->active && c->active->id == id)
                return c->active;
        LIST_FOREACH(cmd, &c->queue)
                if (cmd->id == id)
                        return cmd;
        LIST_FOREACH(cmd, &c->done)
                if (cmd->id == id)
                        return cmd;
        return NULL;
}

int qga_cancel(QgaClient *c, uint64_t id) {
        QgaCommand *cmd;

        if (!c)
                return -EINVAL;
        cmd = qga_find(c, id);
        if (!cmd)
                return -ENOENT;

        if (cmd == c->active) {
                /* It may still run in the guest; its reply must not answer the next command. */
                qga_desync(c);
                qga_input_drop_line(c);
        }
        qga_command_unlink(c, cmd);
        qga_command_set_outcome(cmd, -ECANCELED, NULL);

        qga_client_ref(c);
        qga_dispatch(c);
        qga_command_deliver(c, cmd);
        qga_client_unref(c);
        return 0;
}

bool qga_client_is_connected(QgaClient *c) {
        return c && c->connected;
}

size_t qga_client_pending(QgaClient *c) {
        return c ? c->queue.n + (c->active ? 1 : 0) : 0;
}

int qga_client_set_sync_mode(QgaClient *c, QgaSyncMode mode) {
        if (!c || mode < 0 || mode >= _QGA_SYNC_MODE_MAX)
                return -EINVAL;
        c->sync_mode = mode;
        return 0;
}

int qga_client_set_timeouts(QgaClient *c, uint64_t sync_timeout_usec, uint64_t reply_none_grace_usec) {
        if (!c)
                return -EINVAL;
        c->sync_timeout_usec = sync_timeout_usec > 0 ? sync_timeout_usec : QGA_SYNC_TIMEOUT_USEC;
        c->grace_usec = reply_none_grace_usec > 0 ? reply_none_grace_usec : QGA_REPLY_NONE_GRACE_USEC;
        return 0;
}

size_t qga_client_buffer_capacity(QgaClient *c) {
        return c ? c->in.cap : 0;
}

size_t qga_client_buffer_peak(QgaClient *c) {
        return c ? c->in.peak : 0;
}

void qga_client_get_stats(QgaClient *c, QgaStats *ret) {
        *ret = c ? c->stats : (QgaStats) {};
}
