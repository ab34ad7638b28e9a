/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Agent1.ReadFile / WriteFile: a guest file streamed to or from the caller's
 * descriptor in bounded chunks. One transfer is a small state machine:
 *   open → [seek] → (read chunk → write to fd)* → close → reply     (ReadFile)
 *   open → (read fd → write chunk)* → flush → close → reply         (WriteFile)
 * The guest handle is closed on every path that opened it, errors and caller
 * hang-ups included. The caller's descriptor is a pipe, a FIFO or an AF_UNIX
 * stream socket, made non-blocking and driven by the loop (agent_file_check_fd says
 * why nothing else); it is closed off the loop (bus-fds.c). */

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "agent-file.h"
#include "bus-errors.h"
#include "bus-fds.h"
#include "bus-util.h"
#include "log.h"
#include "qga-file.h"
#include "vm.h"

/* How much of a guest file one agent command moves. The contract allows up to
 * 48 MiB; smaller chunks keep the supervisor's memory low. A read chunk is held
 * twice, as base64 in the agent's line buffer and decoded (qga_send_file_read());
 * a write chunk once, its base64 going out 64 KiB at a time (qga_send_file_write()).
 * Either way about 10 MiB at most, beyond that the round trips per chunk (a sync
 * and the command) start to show. */
#define FILE_READ_CHUNK (4U * 1024U * 1024U)
#define FILE_WRITE_CHUNK (8U * 1024U * 1024U)
/* A caller that neither reads nor writes its end for this long, while the transfer
 * waits for it, loses the transfer. Time spent waiting for the guest does not count:
 * every agent command has its own timeout. */
#define FILE_IDLE_TIMEOUT_USEC (120U * USEC_PER_SEC)
/* The longest reply line accepted for the other commands (guest-file-read's is its
 * base64 plus the same, qga.h): room for an error naming a FILE_PATH_MAX-byte path. A
 * longer line is refused as it arrives instead of being buffered up to QGA_LINE_MAX, so
 * a hostile guest cannot make a small chunk cost 64 MiB. */
#define FILE_REPLY_SLACK QGA_FILE_READ_REPLY_SLACK
/* Transfers at once per VM: each holds a chunk buffer, and one stalled on its caller's
 * descriptor holds no place in the agent's queue, so without a cap a caller could park any
 * number of them. */
#define FILE_TRANSFERS_MAX 4U
/* The longest guest path accepted (Linux's PATH_MAX). */
#define FILE_PATH_MAX 4096U
/* One guest-file-read/-write of a full chunk may take long on a slow guest. */
#define FILE_CHUNK_TIMEOUT_USEC (120U * USEC_PER_SEC)

typedef enum XferStep {
        XFER_OPEN,
        XFER_SEEK,
        XFER_DATA,  /* guest-file-read or guest-file-write in flight, or fd I/O */
        XFER_FLUSH,
        XFER_CLOSE,
} XferStep;

typedef struct FileXfer {
        Vm *vm;
        unsigned *n_transfers; /* the count this transfer is part of */
        BusTicket *ticket;     /* its caller's share (bus-quota.h) */
        sd_bus_message *message;
        bool writing; /* WriteFile: fd → guest */
        char *path;
        bool append;
        int fd;
        sd_event_source *io;
        sd_event_source *idle_timer;
        XferStep step;
        int64_t handle;
        bool handle_open;
        uint64_t offset, length, done;
        uint8_t *buf;
        size_t buf_len, buf_off;
        bool eof;
        /* The first error: answered after the handle is closed. */
        const char *err_name;
        char err_msg[256];
} FileXfer;

static void xfer_free(FileXfer *x) {
        if (!x)
                return;
        if (x->n_transfers)
                (*x->n_transfers)--;
        bus_ticket_release(x->ticket);
        sd_event_source_disable_unref(x->io);
        sd_event_source_disable_unref(x->idle_timer);
        bus_fds_close_async(x->fd);
        sd_bus_message_unref(x->message);
        free(x->path);
        free(x->buf);
        free(x);
}

static void xfer_step(FileXfer *x);

_printf_(3, 4) static void xfer_set_error(FileXfer *x, const char *name, const char *fmt, ...) {
        va_list ap;

        if (x->err_name)
                return;
        x->err_name = name;
        va_start(ap, fmt);
        (void) vsnprintf(x->err_msg, sizeof x->err_msg, fmt, ap);
        va_end(ap);
}

static void xfer_set_agent_error(FileXfer *x, int error, const char *err_class, const char *err_desc) {
        char msg[512];
        /* A transfer caps its replies itself: one beyond the cap is the guest's violation. */
        const char *name = bus_error_from_errno(BUS_ERROR_AGENT_REPLY, error == -EFBIG ? -EPROTO : error, err_class,
                                                err_desc, msg, sizeof msg);

        xfer_set_error(x, name, "%s", msg);
}

/* Ends the transfer: closes the guest handle first if it is open. */
static void xfer_finish(FileXfer *x) {
        if (x->handle_open && x->step != XFER_CLOSE) {
                x->step = XFER_CLOSE;
                xfer_step(x);
                return;
        }
        if (x->err_name)
                bus_reply_error(x->message, x->err_name, "%s", x->err_msg);
        else
                (void) sd_bus_reply_method_return(x->message, "t", x->done);
        log_debug("VM %s: %s %s: %" PRIu64 " bytes%s%s", x->vm->config->name, x->writing ? "WriteFile" : "ReadFile",
                  x->path, x->done, x->err_name ? ", " : "", x->err_name ? x->err_msg : "");
        xfer_free(x);
}

static void xfer_fail(FileXfer *x) {
        x->io = sd_event_source_disable_unref(x->io);
        xfer_finish(x);
}

static int on_idle_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        FileXfer *x = userdata;

        x->idle_timer = sd_event_source_disable_unref(x->idle_timer);
        xfer_set_error(x, SD_BUS_ERROR_TIMEOUT, "The caller's descriptor made no progress for %u seconds.",
                       (unsigned) (FILE_IDLE_TIMEOUT_USEC / USEC_PER_SEC));
        xfer_fail(x);
        return 0;
}

static void xfer_touch(FileXfer *x) {
        if (x->idle_timer)
                (void) sd_event_source_set_time_relative(x->idle_timer, FILE_IDLE_TIMEOUT_USEC);
}

static void on_agent_reply(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata);

static int xfer_send(FileXfer *x, const char *execute, json_t *args) {
        uint64_t timeout = x->step == XFER_DATA ? FILE_CHUNK_TIMEOUT_USEC : 0;
        int r;

        /* guest-file-read, the only command answering more than a few bytes, is not sent here. */
        r = qga_send(x->vm->qga, execute, args, QGA_REPLY_NORMAL, timeout, FILE_REPLY_SLACK, on_agent_reply, x,
                     NULL);
        json_decref(args);
        if (r < 0)
                xfer_set_agent_error(x, r, NULL, NULL);
        return r;
}

/* ---- caller's descriptor ---- */

/* ReadFile: writes buf[buf_off..buf_len) to the fd. Returns 1 when all is written,
 * 0 when waiting for the fd, negative on error. */
static int fd_write_some(FileXfer *x) {
        while (x->buf_off < x->buf_len) {
                ssize_t k = write(x->fd, x->buf + x->buf_off, x->buf_len - x->buf_off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                x->buf_off += (size_t) k;
                xfer_touch(x);
        }
        return 1;
}

/* WriteFile: fills buf up to FILE_WRITE_CHUNK from the fd. Returns 1 when the chunk is full
 * or at EOF, 0 when waiting, negative on error. */
static int fd_read_some(FileXfer *x) {
        while (x->buf_len < FILE_WRITE_CHUNK && !x->eof) {
                ssize_t k = read(x->fd, x->buf + x->buf_len, FILE_WRITE_CHUNK - x->buf_len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                if (k == 0)
                        x->eof = true;
                x->buf_len += (size_t) k;
                xfer_touch(x);
        }
        return 1;
}

static void xfer_fd_io(FileXfer *x);

static int on_fd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        xfer_fd_io(userdata);
        return 0;
}

static void xfer_fd_io(FileXfer *x) {
        int r = x->writing ? fd_read_some(x) : fd_write_some(x);

        if (r < 0) {
                if (r == -EPIPE || r == -ECONNRESET)
                        xfer_set_error(x, SD_BUS_ERROR_IO_ERROR, "The caller closed its end of the descriptor.");
                else
                        xfer_set_error(x, SD_BUS_ERROR_IO_ERROR, "I/O on the caller's descriptor failed: %s.",
                                       strerror(-r));
                xfer_fail(x);
                return;
        }
        if (r == 0) {
                if (!x->io) {
                        /* Waiting for the caller starts the idle clock; no agent command is in
                         * flight now, so a timeout can close the handle at once. */
                        r = sd_event_add_io(x->vm->event, &x->io, x->fd, x->writing ? EPOLLIN : EPOLLOUT, on_fd_io, x);
                        if (r >= 0)
                                r = sd_event_source_set_time_relative(x->idle_timer, FILE_IDLE_TIMEOUT_USEC);
                        if (r >= 0)
                                r = sd_event_source_set_enabled(x->idle_timer, SD_EVENT_ONESHOT);
                        if (r < 0) {
                                xfer_set_error(x, SD_BUS_ERROR_FAILED, "Cannot watch the descriptor.");
                                xfer_fail(x);
                        }
                }
                return;
        }
        x->io = sd_event_source_disable_unref(x->io);
        (void) sd_event_source_set_enabled(x->idle_timer, SD_EVENT_OFF);
        xfer_step(x);
}

/* ---- the steps ---- */

static void xfer_step(FileXfer *x) {
        json_t *args;

        switch (x->step) {
        case XFER_OPEN:
                args = json_pack("{s:s,s:s}", "path", x->path, "mode", x->writing ? (x->append ? "a" : "w") : "r");
                if (!args || xfer_send(x, "guest-file-open", args) < 0)
                        xfer_finish(x);
                return;
        case XFER_SEEK:
                args = json_pack("{s:I,s:I,s:s}", "handle", (json_int_t) x->handle, "offset", (json_int_t) x->offset,
                                 "whence", "set");
                if (!args || xfer_send(x, "guest-file-seek", args) < 0)
                        xfer_finish(x);
                return;
        case XFER_DATA:
                if (x->writing) {
                        if (x->buf_len == 0 && x->eof) {
                                x->step = XFER_FLUSH;
                                xfer_step(x);
                                return;
                        }
                        if (x->buf_len < FILE_WRITE_CHUNK && !x->eof) {
                                xfer_fd_io(x); /* comes back here when the chunk is full or at EOF */
                                return;
                        }
                        if (x->buf_len == 0) {
                                x->step = XFER_FLUSH;
                                xfer_step(x);
                                return;
                        }
                        int r = qga_send_file_write(x->vm->qga, x->handle, x->buf, x->buf_len, FILE_CHUNK_TIMEOUT_USEC,
                                                    on_agent_reply, x, NULL);
                        if (r < 0) {
                                xfer_set_agent_error(x, r, NULL, NULL);
                                xfer_finish(x);
                        }
                        return;
                }
                if (x->eof || (x->length > 0 && x->done >= x->length)) {
                        x->step = XFER_CLOSE;
                        xfer_step(x);
                        return;
                }
                uint64_t count = FILE_READ_CHUNK;
                if (x->length > 0 && x->length - x->done < count)
                        count = x->length - x->done;
                x->buf_len = (size_t) count; /* what was asked for: the most the guest may send */
                /* The reply is decoded into buf by the agent client, straight from its line. */
                int r = qga_send_file_read(x->vm->qga, x->handle, x->buf_len, x->buf, FILE_CHUNK_TIMEOUT_USEC,
                                           on_agent_reply, x, NULL);
                if (r < 0) {
                        xfer_set_agent_error(x, r, NULL, NULL);
                        xfer_finish(x);
                }
                return;
        case XFER_FLUSH:
                args = json_pack("{s:I}", "handle", (json_int_t) x->handle);
                if (!args || xfer_send(x, "guest-file-flush", args) < 0)
                        xfer_finish(x);
                return;
        case XFER_CLOSE:
                if (!x->handle_open) {
                        xfer_finish(x);
                        return;
                }
                args = json_pack("{s:I}", "handle", (json_int_t) x->handle);
                if (!args || xfer_send(x, "guest-file-close", args) < 0) {
                        x->handle_open = false;
                        xfer_finish(x);
                }
                return;
        }
}

static void on_agent_reply(QgaClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                           void *userdata) {
        FileXfer *x = userdata;

        if (x->step == XFER_CLOSE) {
                /* Whatever the answer, the handle is done with (or the guest is gone). */
                if (error < 0)
                        log_debug("VM %s: guest-file-close failed", x->vm->config->name);
                x->handle_open = false;
                xfer_finish(x);
                return;
        }
        if (error == -EBADMSG && x->step == XFER_DATA && !x->writing) {
                xfer_set_error(x, VMSUP_ERROR_AGENT_PROTOCOL, "guest-file-read returned malformed data.");
                xfer_finish(x);
                return;
        }
        if (error < 0) {
                xfer_set_agent_error(x, error, err_class, err_desc);
                xfer_finish(x);
                return;
        }
        switch (x->step) {
        case XFER_OPEN:
                if (!json_is_integer(result) || json_integer_value(result) < 0) {
                        xfer_set_error(x, VMSUP_ERROR_AGENT_PROTOCOL, "guest-file-open returned no handle.");
                        xfer_finish(x);
                        return;
                }
                x->handle = json_integer_value(result);
                x->handle_open = true;
                x->step = (!x->writing && x->offset > 0) ? XFER_SEEK : XFER_DATA;
                break;
        case XFER_SEEK:
                x->step = XFER_DATA;
                break;
        case XFER_DATA:
                if (x->writing) {
                        json_t *cnt = json_object_get(result, "count");
                        if (!json_is_integer(cnt) || (uint64_t) json_integer_value(cnt) != x->buf_len) {
                                xfer_set_error(x, VMSUP_ERROR_AGENT_PROTOCOL,
                                               "The guest wrote a different amount than it was sent.");
                                xfer_finish(x);
                                return;
                        }
                        x->done += x->buf_len;
                        x->buf_len = 0;
                } else {
                        /* The data is in buf already (qga_send_file_read()). */
                        size_t n = (size_t) json_integer_value(json_object_get(result, "count"));
                        bool eof = json_is_true(json_object_get(result, "eof"));
                        x->eof = eof || n == 0;
                        x->done += n;
                        x->buf_len = n;
                        x->buf_off = 0;
                        if (n > 0) {
                                xfer_fd_io(x); /* back to xfer_step when written */
                                return;
                        }
                }
                break;
        case XFER_FLUSH:
                x->step = XFER_CLOSE;
                break;
        case XFER_CLOSE:
                break;
        }
        xfer_step(x);
}

/* ---- methods ---- */

/* The caller's descriptor: only kinds whose I/O can never block the loop once non-blocking, and
 * whose peer learns nothing from who writes: pipes and FIFOs, and AF_UNIX stream sockets (the
 * peer's SO_PEERCRED is the connecting caller's). Refused: regular files and directories (their
 * reads and writes ignore O_NONBLOCK and block on a slow or hostile file system such as FUSE),
 * devices, O_PATH descriptors, other socket families, and datagram and seqpacket sockets (each
 * message is stamped with the sender's credentials: the supervisor's uid 0 and pid, to a
 * receiver like a service manager's notification socket). ReadFile needs a writable descriptor,
 * WriteFile a readable one. */
int agent_file_check_fd(int fd, bool writing, sd_bus_error *error) {
        struct statx st;
        int flags, acc;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if (flags & O_PATH)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "An O_PATH descriptor cannot be read or written.");
        acc = flags & O_ACCMODE;
        if (writing ? acc == O_WRONLY : acc == O_RDONLY)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        writing ? "The descriptor must be readable." : "The descriptor must be writable.");
        /* The type only, from what the kernel has: a stat that asked a FUSE server would block. */
        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &st) < 0)
                return -errno;
        if (S_ISFIFO(st.stx_mode))
                return 0;
        if (S_ISSOCK(st.stx_mode)) {
                int domain = -1, type = -1;
                socklen_t l1 = sizeof domain, l2 = sizeof type;

                if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l1) < 0 ||
                    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) < 0)
                        return -errno;
                if (domain == AF_UNIX && type == SOCK_STREAM)
                        return 0;
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "A socket must be an AF_UNIX stream socket (no datagram or seqpacket).");
        }
        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                "The descriptor must be a pipe, a FIFO or an AF_UNIX stream socket.");
}

static int xfer_new(Vm *vm, sd_bus_message *m, bool writing, const char *path, int caller_fd, unsigned *n_transfers,
                    FileXfer **ret, sd_bus_error *error) {
        FileXfer *x;
        int fd, flags;

        if (strlen(path) == 0 || strlen(path) > FILE_PATH_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The guest path must be 1 to %u bytes.",
                                         FILE_PATH_MAX);
        if (*n_transfers >= FILE_TRANSFERS_MAX)
                return sd_bus_error_set(error, VMSUP_ERROR_BUSY,
                                        "Too many file transfers are under way for this VM; try again later.");
        fd = fcntl(caller_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        x = calloc(1, sizeof *x);
        if (!x) {
                bus_fds_close_async(fd);
                return -ENOMEM;
        }
        x->fd = fd;
        /* Never block the loop on a slow caller (this also makes the caller's open file
         * description non-blocking; it handed it over for this call). */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
                xfer_free(x);
                return -errno;
        }
        x->buf = malloc(writing ? FILE_WRITE_CHUNK : FILE_READ_CHUNK);
        x->path = strdup(path);
        if (!x->buf || !x->path) {
                xfer_free(x);
                return -ENOMEM;
        }
        /* Armed only while the transfer waits for the caller's descriptor (xfer_fd_io). */
        if (sd_event_add_time_relative(vm->event, &x->idle_timer, CLOCK_MONOTONIC, FILE_IDLE_TIMEOUT_USEC, 0,
                                       on_idle_timeout, x) < 0 ||
            sd_event_source_set_enabled(x->idle_timer, SD_EVENT_OFF) < 0) {
                xfer_free(x);
                return -ENOMEM;
        }
        x->vm = vm;
        x->n_transfers = n_transfers;
        (*n_transfers)++;
        x->writing = writing;
        x->message = sd_bus_message_ref(m);
        x->step = XFER_OPEN;
        *ret = x;
        return 0;
}

int agent_file_read(Vm *vm, sd_bus_message *m, const char *path, int fd, uint64_t offset, uint64_t length,
                    unsigned *n_transfers, BusTicket *ticket, sd_bus_error *error) {
        FileXfer *x;
        int r;

        r = xfer_new(vm, m, false, path, fd, n_transfers, &x, error);
        if (r < 0)
                return r;
        x->ticket = ticket;
        x->offset = offset;
        x->length = length;
        xfer_step(x);
        return 1;
}

int agent_file_write(Vm *vm, sd_bus_message *m, const char *path, int fd, bool append, unsigned *n_transfers,
                     BusTicket *ticket, sd_bus_error *error) {
        FileXfer *x;
        int r;

        r = xfer_new(vm, m, true, path, fd, n_transfers, &x, error);
        if (r < 0)
                return r;
        x->ticket = ticket;
        x->append = append;
        xfer_step(x);
        return 1;
}
