/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.Console1 on /org/vmsup/VM.
 *
 * OpenSerial: the console's one interactive session (console.c).
 * OpenVNC: a socket pair; QMP getfd hands one end to QEMU and add_client (vnc, no
 *   authentication: the caller was authorized here) makes it a viewer of the display
 *   that listens nowhere (-vnc none); the other end is the reply.
 * Screenshot: QEMU writes a PNG into a memory file it receives with add-fd (it never
 *   opens a path a caller names), then the supervisor copies it into the caller's
 *   descriptor (a pipe, FIFO or AF_UNIX stream socket, as ReadFile takes), driven by
 *   the loop. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-file.h"
#include "bus-errors.h"
#include "bus-fds.h"
#include "console-dbus.h"
#include "log.h"
#include "vm.h"

typedef struct ConsoleBus {
        VmBus *bus;
        unsigned n_screenshots;
        unsigned fdset_seq;
} ConsoleBus;

static int state_new(VmBus *b, void **ret) {
        ConsoleBus *cb = calloc(1, sizeof *cb);

        if (!cb)
                return -ENOMEM;
        cb->bus = b;
        *ret = cb;
        return 0;
}

static void state_free(void *state) {
        free(state);
}

static int require_console(ConsoleBus *cb, sd_bus_message *m, sd_bus_error *error) {
        int r = bus_require(cb->bus, m, PRIV_VM_CONSOLE, error);
        if (r < 0)
                return r;
        if (!vm_is_running(cb->bus->vm))
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        return 0;
}

/* ---- serial ---- */

static int open_serial(ConsoleBus *cb, sd_bus_message *m, bool force, sd_bus_error *error) {
        Vm *vm = cb->bus->vm;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!console_is_attached(vm->console))
                return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED, "The VM has no serial console.");
        r = console_open_session(vm->console, force, &fd);
        if (r == -EBUSY)
                return sd_bus_error_set(error, VMSUP_ERROR_BUSY,
                                        "A console session is open; the force option takes it over.");
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "h", fd);
}

static int method_open_serial(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ConsoleBus *cb = userdata;
        int r;

        r = require_console(cb, m, error);
        if (r < 0)
                return r;
        return open_serial(cb, m, false, error);
}

static int method_open_serial_with_options(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ConsoleBus *cb = userdata;
        bool force = false;
        const char *key;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "force")) {
                        int b;

                        r = sd_bus_message_enter_container(m, 'v', "b");
                        if (r < 0)
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The force option is a boolean.");
                        r = sd_bus_message_read(m, "b", &b);
                        if (r < 0)
                                return r;
                        force = b;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                } else
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option (known: force).");
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = require_console(cb, m, error);
        if (r < 0)
                return r;
        return open_serial(cb, m, force, error);
}

/* ---- VNC ---- */

typedef struct FdReply {
        sd_bus_message *message;
        int fd;
} FdReply;

static void fd_reply_free(FdReply *f) {
        sd_bus_message_unref(f->message);
        safe_close(f->fd);
        free(f);
}

static void on_add_client(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        FdReply *f = userdata;

        if (error < 0)
                bus_reply_errno(f->message, BUS_ERROR_QMP_REPLY, error, err_class, err_desc);
        else
                (void) sd_bus_reply_method_return(f->message, "h", f->fd);
        fd_reply_free(f);
}

static int method_open_vnc(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ConsoleBus *cb = userdata;
        Vm *vm = cb->bus->vm;
        _cleanup_(json_decrefp) json_t *getfd = NULL, *add = NULL;
        FdReply *f;
        int pair[2], r;

        r = require_console(cb, m, error);
        if (r < 0)
                return r;
        getfd = json_pack("{s:s}", "fdname", "vmsup-vnc");
        add = json_pack("{s:s, s:s, s:b}", "protocol", "vnc", "fdname", "vmsup-vnc", "skipauth", 1);
        if (!getfd || !add)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        f = calloc(1, sizeof *f);
        if (!f) {
                safe_close(pair[0]);
                safe_close(pair[1]);
                return -ENOMEM;
        }
        f->message = sd_bus_message_ref(m);
        f->fd = pair[0];
        /* Both at once: QEMU runs them in order, so the name is this call's when add_client
         * takes it (and add_client consumes it). */
        r = qmp_send_fd(vm->qmp, "getfd", getfd, pair[1], 0, NULL, NULL, NULL);
        if (r >= 0)
                r = qmp_send(vm->qmp, "add_client", add, 0, on_add_client, f, NULL);
        if (r < 0) {
                fd_reply_free(f);
                return bus_error_set_errno(error, BUS_ERROR_QMP_SEND, r, NULL, NULL);
        }
        return 1;
}

/* ---- screenshot ---- */

typedef struct Shot {
        ConsoleBus *cb;
        sd_bus_message *message;
        int memfd;
        int fd; /* the caller's */
        sd_event_source *io;
        uint64_t off, size;
} Shot;

static void shot_free(Shot *s) {
        if (!s)
                return;
        s->cb->n_screenshots--;
        sd_bus_message_unref(s->message);
        sd_event_source_disable_unref(s->io);
        safe_close(s->memfd);
        bus_fds_close_async(s->fd);
        free(s);
}

static void shot_fail(Shot *s, const char *name, const char *msg) {
        bus_reply_error(s->message, name, "%s", msg);
        shot_free(s);
}

static void shot_fail_too_large(Shot *s) {
        bus_reply_error(s->message, VMSUP_ERROR_RESPONSE_TOO_LARGE, "The screenshot is larger than %u MiB.",
                        CONSOLE_SCREENSHOT_MAX >> 20);
        shot_free(s);
}

/* Copies what the caller's descriptor accepts; 1 when done, 0 to wait, <0 on error. */
static int shot_copy(Shot *s) {
        char buf[65536];

        while (s->off < s->size) {
                size_t n = s->size - s->off < sizeof buf ? (size_t) (s->size - s->off) : sizeof buf;
                ssize_t k = pread(s->memfd, buf, n, (off_t) s->off);
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                ssize_t w = write(s->fd, buf, (size_t) k);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                s->off += (uint64_t) w;
        }
        return 1;
}

static void shot_step(Shot *s) {
        int r = shot_copy(s);

        if (r == 0)
                return; /* the io source calls again when the descriptor takes more */
        if (r < 0)
                return shot_fail(s, SD_BUS_ERROR_IO_ERROR, "Cannot write the screenshot into the descriptor.");
        (void) sd_bus_reply_method_return(s->message, NULL);
        shot_free(s);
}

static int on_shot_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        shot_step(userdata);
        return 0;
}

static void on_screendump(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        Shot *s = userdata;
        struct stat st;

        if (error < 0) {
                bus_reply_errno(s->message, BUS_ERROR_QMP_REPLY, error, err_class, err_desc);
                return shot_free(s);
        }
        if (fstat(s->memfd, &st) < 0 || st.st_size <= 0)
                return shot_fail(s, VMSUP_ERROR_QEMU_ERROR, "QEMU wrote no screenshot.");
        if ((uint64_t) st.st_size > CONSOLE_SCREENSHOT_MAX)
                return shot_fail_too_large(s);
        s->size = (uint64_t) st.st_size;
        if (sd_event_add_io(s->cb->bus->vm->event, &s->io, s->fd, EPOLLOUT, on_shot_io, s) < 0)
                return shot_fail(s, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
        (void) sd_event_source_set_enabled(s->io, SD_EVENT_ON);
}

static int method_screenshot(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        ConsoleBus *cb = userdata;
        Vm *vm = cb->bus->vm;
        _cleanup_(json_decrefp) json_t *add = NULL, *dump = NULL, *rm = NULL;
        _cleanup_close_ int memfd = -EBADF, wfd = -EBADF;
        char path[64];
        Shot *s;
        int fd, flags, r;
        unsigned set;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        r = agent_file_check_fd(fd, false, error);
        if (r < 0)
                return r;
        r = require_console(cb, m, error);
        if (r < 0)
                return r;
        if (cb->n_screenshots >= CONSOLE_SCREENSHOTS_MAX)
                return sd_bus_error_setf(error, VMSUP_ERROR_BUSY, "%u screenshots are being taken already.",
                                         CONSOLE_SCREENSHOTS_MAX);

        memfd = memfd_create("vmsup-screenshot", MFD_CLOEXEC);
        if (memfd < 0)
                return -errno;
        /* QEMU opens /dev/fdset/N write-only: it must hold a write-only description. */
        snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
        wfd = open(path, O_WRONLY | O_CLOEXEC);
        if (wfd < 0)
                return -errno;
        set = 1000U + (cb->fdset_seq++ % 1000000U);
        snprintf(path, sizeof path, "/dev/fdset/%u", set);
        add = json_pack("{s:i}", "fdset-id", (json_int_t) set);
        dump = json_pack("{s:s, s:s}", "filename", path, "format", "png");
        rm = json_pack("{s:i}", "fdset-id", (json_int_t) set);
        if (!add || !dump || !rm)
                return -ENOMEM;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->cb = cb;
        cb->n_screenshots++;
        s->message = sd_bus_message_ref(m);
        s->memfd = TAKE_FD(memfd);
        s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (s->fd < 0) {
                r = -errno;
                shot_free(s);
                return r;
        }
        flags = fcntl(s->fd, F_GETFL);
        if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(s->fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
                r = -errno;
                shot_free(s);
                return r;
        }
        /* In order: the set, the dump into it, the set's end (QEMU drops it once its own
         * copy is closed). */
        r = qmp_send_fd(vm->qmp, "add-fd", add, TAKE_FD(wfd), 0, NULL, NULL, NULL);
        if (r >= 0)
                r = qmp_send(vm->qmp, "screendump", dump, 0, on_screendump, s, NULL);
        if (r < 0) {
                shot_free(s);
                return bus_error_set_errno(error, BUS_ERROR_QMP_SEND, r, NULL, NULL);
        }
        (void) qmp_send(vm->qmp, "remove-fd", rm, 0, NULL, NULL, NULL);
        return 1;
}

static const sd_bus_vtable console_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("OpenSerial", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", fd), method_open_serial,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenSerialWithOptions", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd),
                                method_open_serial_with_options, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenVNC", SD_BUS_NO_ARGS, SD_BUS_RESULT("h", fd), method_open_vnc,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Screenshot", SD_BUS_ARGS("h", fd), SD_BUS_NO_RESULT, method_screenshot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

const BusInterface console_bus_interface = {
        .name = CONSOLE_INTERFACE,
        .vtable = console_vtable,
        .state_new = state_new,
        .state_free = state_free,
};
