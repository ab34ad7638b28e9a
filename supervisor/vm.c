/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM: QEMU's process, its QMP connection, its agent channel, and the state
 * machine that QMP events and the process exit drive. Everything runs on the one
 * sd_event loop; nothing here blocks. */

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "bus-errors.h"
#include "launch.h"
#include "state-file.h"
#include "log.h"
#include "vm-dbus.h"
#include "vm-state.h"
#include "vm.h"
#include "reload.h"

static const char * const vm_state_table[_VM_STATE_MAX] = {
        [VM_STOPPED] = "stopped",
        [VM_STARTING] = "starting",
        [VM_RUNNING] = "running",
        [VM_PAUSED] = "paused",
        [VM_SUSPENDED] = "suspended",
        [VM_SHUTTING_DOWN] = "shutting-down",
        [VM_STOPPING] = "stopping",
        [VM_CRASHED] = "crashed",
        [VM_MIGRATING] = "migrating",
        [VM_INCOMING] = "incoming",
};

const char *vm_state_to_string(VmState s) {
        if (s < 0 || s >= _VM_STATE_MAX)
                return NULL;
        return vm_state_table[s];
}

static void vm_begin_hard_stop(Vm *vm);

bool vm_is_active(Vm *vm) {
        return vm->pid > 0;
}

bool vm_is_running(Vm *vm) {
        return vm->pid > 0 && vm->qmp && qmp_client_is_ready(vm->qmp) &&
               IN_SET(vm->state, VM_RUNNING, VM_PAUSED, VM_SUSPENDED, VM_SHUTTING_DOWN, VM_STOPPING, VM_MIGRATING);
}

static void vm_set_state(Vm *vm, VmState state, const char *reason) {
        bool changed = vm->state != state || !streq_ptr(vm->state_reason, reason);
        char *r;

        if (!changed)
                return;
        r = strdup(reason ?: "");
        if (!r) {
                log_oom();
                return;
        }
        free(vm->state_reason);
        vm->state_reason = r;
        if (vm->state != state)
                log_info("VM %s: %s -> %s (%s)", vm->config->name, vm_state_to_string(vm->state),
                         vm_state_to_string(state), vm->state_reason);
        vm->state = state;
        vm_emit_state_changed(vm);
}

void vm_set_bus(Vm *vm, sd_bus *bus) {
        sd_bus_unref(vm->bus);
        vm->bus = sd_bus_ref(bus);
}

void vm_note_pause_requested(Vm *vm) {
        vm->pause_requested = true;
}

void vm_note_resume_requested(Vm *vm) {
        vm->resume_requested = true;
}

static void set_string(char **p, const char *s) {
        char *c = s ? strdup(s) : NULL;
        if (s && !c) {
                log_oom();
                return;
        }
        free(*p);
        *p = c;
}

/* ---- waiters: method calls answered later ---- */

/* Answers a waiter's call (none: nothing to do); error NULL = success. */
static void waiter_reply(sd_bus_message *m, const char *error, const char *message) {
        if (!m)
                return;
        if (error)
                (void) sd_bus_reply_method_errorf(m, error, "%.511s", message);
        else
                (void) sd_bus_reply_method_return(m, NULL);
}

static VmWaiter *waiter_free(VmWaiter *w) {
        if (!w)
                return NULL;
        if (w->vm)
                LIST_REMOVE(&w->vm->waiters, w);
        sd_event_source_disable_unref(w->timer);
        sd_bus_message_unref(w->message);
        free(w);
        return NULL;
}

static int shutdown_waiter_timeout(sd_event_source *s, uint64_t usec, void *userdata);

static int waiter_add(Vm *vm, VmWaitKind kind, sd_bus_message *m, uint64_t timeout_usec, bool force) {
        VmWaiter *w;
        int r;

        /* Without a message (an internal request) only a timed waiter has work to do. */
        if (!m && timeout_usec == 0)
                return 0;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->kind = kind;
        w->force = force;
        w->message = m ? sd_bus_message_ref(m) : NULL;
        if (timeout_usec > 0) {
                r = sd_event_add_time_relative(vm->event, &w->timer, CLOCK_MONOTONIC, timeout_usec, 0,
                                               shutdown_waiter_timeout, w);
                if (r < 0) {
                        sd_bus_message_unref(w->message);
                        free(w);
                        return r;
                }
        }
        w->vm = vm;
        LIST_PREPEND(&vm->waiters, w);
        return 0;
}

/* Answers every waiter of the given kinds. error NULL = success. */
static void waiters_answer(Vm *vm, unsigned kinds_mask, const char *error, const char *message) {
        VmWaiter *w, *next;

        LIST_FOREACH_SAFE(w, next, &vm->waiters) {
                if (!(kinds_mask & (1U << w->kind)))
                        continue;
                waiter_reply(w->message, error, message);
                waiter_free(w);
        }
}

static bool have_waiters(Vm *vm, VmWaitKind kind) {
        VmWaiter *w;

        LIST_FOREACH(w, &vm->waiters)
                if (w->kind == kind)
                        return true;
        return false;
}

static int shutdown_waiter_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        VmWaiter *w = userdata;
        Vm *vm = w->vm;

        w->timer = sd_event_source_disable_unref(w->timer);
        if (w->force) {
                log_info("VM %s: shutdown timed out, stopping it hard", vm->config->name);
                w->kind = VM_WAIT_EXIT;
                vm_begin_hard_stop(vm);
                return 0;
        }
        if (w->kind == VM_WAIT_REBOOT) {
                waiter_reply(w->message, SD_BUS_ERROR_TIMEOUT, "The guest did not run again in time.");
                waiter_free(w);
                /* Nobody waits any more: a guest that ignored the power button runs on. A guest
                 * already going down (its SHUTDOWN came) still gets its fresh start. */
                if (vm->reboot_pending && !have_waiters(vm, VM_WAIT_REBOOT) && !vm->shutdown_reason) {
                        vm->reboot_pending = false;
                        if (vm->state == VM_SHUTTING_DOWN && !have_waiters(vm, VM_WAIT_SHUTDOWN) &&
                            !have_waiters(vm, VM_WAIT_EXIT) && vm->stop_phase == 0)
                                vm_set_state(vm, vm->state_before_shutdown, "reboot-timeout");
                }
                return 0;
        }
        waiter_reply(w->message, SD_BUS_ERROR_TIMEOUT, "The guest did not shut down in time.");
        waiter_free(w);
        /* Nobody waits any more and the guest ignored the request: the VM simply runs on. */
        if (vm->state == VM_SHUTTING_DOWN && !vm->shutdown_reason && !have_waiters(vm, VM_WAIT_SHUTDOWN) &&
            !have_waiters(vm, VM_WAIT_EXIT) && vm->stop_phase == 0)
                vm_set_state(vm, vm->state_before_shutdown, "shutdown-timeout");
        return 0;
}

/* ---- the process ---- */

static void vm_kill(Vm *vm, int sig) {
        if (vm->pidfd < 0)
                return;
        if (syscall(SYS_pidfd_send_signal, vm->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
                log_warning_errno(errno, "Failed to send signal %d to QEMU: %m", sig);
}

/* Logs QEMU's output line by line and keeps the last line for start-failure reasons.
 * The bytes are QEMU's: sanitized to printable ASCII, lines truncated. */
static void stderr_consume(Vm *vm, const char *buf, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char ch = buf[i];
                if (ch == '\n') {
                        if (vm->stderr_len > 0) {
                                vm->stderr_tail[vm->stderr_len] = '\0';
                                memcpy(vm->stderr_last, vm->stderr_tail, vm->stderr_len + 1);
                                log_info("qemu: %s", vm->stderr_tail);
                        }
                        vm->stderr_len = 0;
                        continue;
                }
                if (vm->stderr_len < sizeof vm->stderr_tail - 1)
                        vm->stderr_tail[vm->stderr_len++] = text_char(ch, 0);
        }
}

static void stderr_drain(Vm *vm) {
        char buf[4096];

        if (vm->stderr_fd < 0)
                return;
        /* Bounded per dispatch: a chatty QEMU cannot hold the loop. */
        for (unsigned rounds = 0; rounds < 16; rounds++) {
                ssize_t k = read(vm->stderr_fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        if (k == 0 || errno != EAGAIN) {
                                vm->stderr_source = sd_event_source_disable_unref(vm->stderr_source);
                                vm->stderr_fd = safe_close(vm->stderr_fd);
                        }
                        return;
                }
                stderr_consume(vm, buf, (size_t) k);
        }
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        stderr_drain(userdata);
        return 0;
}

static void vm_agent_detach(Vm *vm) {
        vm->agent_port_open = false;
        vm->agent_generation++;
        if (vm->qga)
                qga_client_detach(vm->qga);
        if (vm->agent_connected) {
                vm->agent_connected = false;
                vm_emit_properties_changed(vm, "AgentConnected");
        }
}

static void vm_start_diag_close(Vm *vm) {
        vm->start_qmp_fd = safe_close(vm->start_qmp_fd);
}

/* Reads a /proc/PID file's first line into buf; returns buf or "?". */
static const char *proc_line(pid_t pid, const char *what, const char *key, char *buf, size_t size) {
        _cleanup_fclose_ FILE *f = NULL;
        char path[64];

        (void) snprintf(path, sizeof path, "/proc/%d/%s", (int) pid, what);
        f = fopen(path, "re");
        if (!f)
                return "?";
        while (fgets(buf, (int) size, f)) {
                if (key && !startswith(buf, key))
                        continue;
                buf[strcspn(buf, "\n")] = '\0';
                return buf;
        }
        return "?";
}

/* Each of QEMU's threads: name, state and where in the kernel it sleeps. */
static void log_qemu_threads(Vm *vm) {
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;
        unsigned n = 0;

        if (asprintf(&dir, "/proc/%d/task", (int) vm->pid) < 0)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d)) && n < 32) {
                _cleanup_free_ char *comm = NULL, *wchan = NULL, *stat = NULL;
                char c[64] = "?", w[128] = "?", st[512] = "", *p;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&comm, "task/%s/comm", de->d_name) < 0 || asprintf(&wchan, "task/%s/wchan", de->d_name) < 0 ||
                    asprintf(&stat, "task/%s/stat", de->d_name) < 0)
                        break;
                (void) proc_line(vm->pid, comm, NULL, c, sizeof c);
                (void) proc_line(vm->pid, wchan, NULL, w, sizeof w);
                (void) proc_line(vm->pid, stat, NULL, st, sizeof st);
                p = strrchr(st, ')'); /* "TID (comm) S ..." */
                log_debug("VM %s: QEMU thread %s \"%s\": state %c, sleeping in %s", vm->config->name, de->d_name, c,
                          p && p[1] == ' ' ? p[2] : '?', w[0] && !streq(w, "0") ? w : "-");
                n++;
        }
        closedir(d);
}

/* Records what the sockets and QEMU's process say now (once per run: at the first failure,
 * while QEMU still lives). */
static void vm_flight_note(Vm *vm) {
        char a[256], b[256];

        if (vm->flight_noted)
                return;
        vm->flight_noted = true;
        if (vm->start_qmp_fd >= 0) {
                struct pollfd p = { .fd = vm->start_qmp_fd, .events = POLLIN };
                int ours = -1, theirs = -1;
                (void) poll(&p, 1, 0);
                if (ioctl(vm->start_qmp_fd, FIONREAD, &ours) < 0)
                        ours = -errno;
                /* The buffer space of what we sent and QEMU has not read yet (not the bytes). */
                if (ioctl(vm->start_qmp_fd, SIOCOUTQ, &theirs) < 0)
                        theirs = -errno;
                log_debug("VM %s: QMP connection: %d bytes from QEMU unread by us (poll revents 0x%x); "
                          "%s", vm->config->name, ours, (unsigned) p.revents,
                          theirs == 0 ? "QEMU read all we sent" : theirs > 0 ? "QEMU left some of what we sent unread" : "");
        }
        if (vm->pid > 0)
                log_debug("VM %s: QEMU pid %d: %s, %s, %s", vm->config->name, (int) vm->pid,
                          proc_line(vm->pid, "status", "State:", a, sizeof a),
                          proc_line(vm->pid, "status", "Threads:", b, sizeof b),
                          vm->qmp ? (qmp_client_is_ready(vm->qmp) ? "QMP ready" :
                                     qmp_client_version(vm->qmp) ? "QMP greeting received" : "no QMP greeting")
                                  : "no QMP client");
        if (vm->pid > 0)
                log_qemu_threads(vm);
}

/* A start or run failed: records the state of things, and writes the flight recorder out
 * (once per run). While starting, QEMU's exit follows (it was killed, or it fails on its own,
 * and then its last words on stderr often arrive after its monitor went away): the record
 * is written when that exit ends the start, with those words in it. */
static void vm_flight_dump(Vm *vm, const char *why) {
        _cleanup_free_ char *header = NULL;

        if (vm->pid > 0)
                vm_flight_note(vm);
        if (vm->flight_dumped || (vm->state == VM_STARTING && vm->pid > 0))
                return;
        vm->flight_dumped = true;
        if (asprintf(&header, "VM %s: %s", vm->config->name, why) < 0)
                header = NULL;
        (void) log_ring_dump(LOG_WARNING, header ?: why);
}

/* Releases everything that belonged to the run that just ended. */
static void vm_cleanup_run(Vm *vm) {
        vm->child_source = sd_event_source_disable_unref(vm->child_source);
        vm->pidfd = safe_close(vm->pidfd);
        vm->stderr_source = sd_event_source_disable_unref(vm->stderr_source);
        vm->stderr_fd = safe_close(vm->stderr_fd);
        vm->stop_timer = sd_event_source_disable_unref(vm->stop_timer);
        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        vm->qmp_lost_timer = sd_event_source_disable_unref(vm->qmp_lost_timer);
        vm->qmp = qmp_client_free(vm->qmp);
        if (vm->console)
                console_detach(vm->console);
        vm_start_diag_close(vm);
        vm_agent_detach(vm);
        vm->pid = 0;
        vm->adopting = false;
        vm->incoming = false;
        vm->migrated_out = false;
        vm->stop_phase = 0;
        vm->start_paused = false;
        vm->host_stop_requested = false;
        vm->started_at_usec = 0;
        vm->started_at_mono = 0;
        vm->pause_requested = vm->resume_requested = false;
        vm_emit_properties_changed(vm, "Pid");
        vm_emit_properties_changed(vm, "StartedAtUSec");
}

/* The run is up (running, or paused as asked): Start and Reboot are answered. */
static void vm_start_completed(Vm *vm) {
        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        vm->reboot_pending = false;
        waiters_answer(vm, 1U << VM_WAIT_START | 1U << VM_WAIT_REBOOT, NULL, NULL);
        if (vm->on_settled)
                vm->on_settled(vm);
}

static void vm_restart_failed(Vm *vm, bool restart);

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Vm *vm = userdata;
        _cleanup_free_ char *shutdown_reason = NULL, *kill_reason = NULL, *limit_reason = NULL;
        VmExitOutcome end;
        VmRestartDecision d;
        bool host_requested = vm->host_stop_requested || vm->exit_when_stopped;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int r;

        /* What QEMU said before it ended comes first: its SHUTDOWN event (why it ended)
         * may still be unread when the launcher's exit report is. */
        if (vm->qmp)
                qmp_client_read_pending(vm->qmp);
        stderr_drain(vm);
        stderr_consume(vm, "\n", 1); /* an unterminated last line */

        shutdown_reason = TAKE_PTR(vm->shutdown_reason);
        kill_reason = TAKE_PTR(vm->kill_reason);
        vm_state_exit(&(VmExitInput) { .state = vm->state, .code = si->si_code, .status = si->si_status,
                                       .stop_phase = vm->stop_phase, .kill_reason = kill_reason,
                                       .shutdown_reason = shutdown_reason, .stderr_last = vm->stderr_last,
                                       .guest_panicked = vm->guest_panicked, .incoming = vm->incoming,
                                       .migrated_out = vm->migrated_out },
                      &end);
        log_info("VM %s: QEMU (pid %d) %s", vm->config->name, (int) vm->pid, end.status);
        vm_cleanup_run(vm);

        vm_state_restart(&(VmRestartInput) { .state = end.state, .start_failed = end.start_failed,
                                             .host_requested = host_requested,
                                             .reboot_requested = vm->reboot_pending,
                                             .shutdown_reason = shutdown_reason,
                                             .on_poweroff = vm->config->on_poweroff,
                                             .on_reboot = vm->config->on_reboot,
                                             .on_crash = vm->config->on_crash, .now_usec = now,
                                             .recent = vm->restart_times, .n_recent = VM_RESTART_BURST },
                         &d);
        if (d.limited) {
                if (asprintf(&limit_reason, "restart-limit: %u restarts within %u s, last %s", d.n_in_window,
                             (unsigned) (VM_RESTART_WINDOW_USEC / USEC_PER_SEC), end.reason) < 0)
                        limit_reason = NULL;
                log_warning("VM %s: %s: not restarting it", vm->config->name, limit_reason ?: "restart limit");
        }

        /* The state first, then the answers: a caller's reply never overtakes the
         * StateChanged signal that explains it. */
        if (end.start_failed)
                vm_flight_dump(vm, "start failed");
        else if (end.state == VM_CRASHED)
                vm_flight_dump(vm, "crashed");
        vm_set_state(vm, end.state, limit_reason ?: end.reason);
        waiters_answer(vm, 1U << VM_WAIT_START, VMSUP_ERROR_QEMU_ERROR,
                       end.start_failed ? end.reason : "QEMU exited before the VM ran.");
        waiters_answer(vm, 1U << VM_WAIT_EXIT | 1U << VM_WAIT_SHUTDOWN, NULL, NULL);
        if (vm->migration_hooks && vm->migration_hooks->ended)
                vm->migration_hooks->ended(vm, vm->migration_userdata);
        vm->stderr_last[0] = '\0';
        vm->guest_panicked = false;
        if (d.restart) {
                if (d.counted) {
                        vm->restart_times[vm->restart_next] = now;
                        vm->restart_next = (vm->restart_next + 1) % VM_RESTART_BURST;
                }
                log_info("VM %s: starting QEMU afresh (%s)", vm->config->name,
                         vm->reboot_pending ? "reboot" : end.reason);
                r = vm_start(vm, NULL);
                if (r >= 0)
                        return 0;
                if (r == -EAGAIN && vm_reload_in_flight(vm)) {
                        /* The launcher answers the reload first (vm_reload_ended()). */
                        log_info("VM %s: starting QEMU once the reload in progress is answered", vm->config->name);
                        vm->start_after_reload = true;
                        return 0;
                }
                log_warning_errno(r, "VM %s: cannot start QEMU again: %m", vm->config->name);
        }
        vm_restart_failed(vm, d.restart);
        return 0;
}

static void vm_restart_failed(Vm *vm, bool restart) {
        vm->reboot_pending = false;
        waiters_answer(vm, 1U << VM_WAIT_REBOOT, VMSUP_ERROR_QEMU_ERROR,
                       restart ? "QEMU could not be started again." : "QEMU exited and the VM was not restarted.");
        if (vm->on_settled)
                vm->on_settled(vm);
}

void vm_reload_ended(Vm *vm) {
        int r;

        if (!vm->start_after_reload || vm_reload_in_flight(vm))
                return; /* nothing waits, or after the next reload */
        vm->start_after_reload = false;
        if (vm_is_starting(vm) || vm_is_active(vm))
                return; /* someone started it meanwhile */
        r = vm_start(vm, NULL);
        if (r >= 0)
                return;
        log_warning_errno(r, "VM %s: cannot start QEMU again: %m", vm->config->name);
        vm_restart_failed(vm, true);
}

/* The launcher is QEMU's parent and reports its exit on the run's exit pipe. */
static int on_exit_report(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;
        siginfo_t si;
        int r;

        r = launch_read_exit(fd, &si);
        if (r == 0)
                return 0;
        if (r < 0) {
                /* Cannot happen with our launcher. Make sure QEMU is gone before saying so. */
                log_error_errno(r, "VM %s: unreadable exit report from the launcher: %m", vm->config->name);
                vm_kill(vm, SIGKILL);
                si = (siginfo_t) { .si_code = CLD_KILLED, .si_status = SIGKILL };
        }
        return on_child_exit(s, &si, vm);
}

/* ---- QMP ---- */

static void on_cont_reply(QmpClient *c, int error, json_t *result, const char *err_class,
                          const char *err_desc, void *userdata) {
        Vm *vm = userdata;

        if (vm->state != VM_STARTING)
                return;
        if (error < 0) {
                set_string(&vm->kill_reason, "start-failed: cont refused");
                log_warning("VM %s: QEMU refused to run the VM: %s: %s", vm->config->name, err_class ?: "",
                            err_desc ?: strerror(-error));
                vm_kill(vm, SIGKILL);
                return;
        }
        vm_set_state(vm, VM_RUNNING, "started");
        vm_start_completed(vm);
}

static int connect_socket(const char *dir, const char *name);

static int vm_agent_connect(Vm *vm) {
        int fd;

        if (!vm->qga)
                return 0;
        fd = connect_socket(vm->runtime_dir, "qga.sock");
        if (fd < 0)
                return fd;
        /* No sync yet: the guest opens the port when its agent starts (VSERPORT_CHANGE). */
        return qga_client_attach(vm->qga, fd, false);
}

static void on_serial_reply(QmpClient *c, int error, json_t *result, const char *err_class,
                            const char *err_desc, void *userdata) {
        Vm *vm = userdata;

        if (error < 0) {
                log_warning("VM %s: cannot take over the serial port, it stays in QEMU's ring buffer: %s",
                            vm->config->name, err_desc ?: strerror(-error));
                if (vm->console)
                        console_detach(vm->console);
        }
}

/* The first serial port starts in a ring buffer (config.c); while the VM is still paused
 * it is switched to one end of a socket pair whose other end the console reads, so
 * nothing the guest writes is missed. QEMU answers in order: "cont" comes after. */
static int vm_serial_attach(Vm *vm, QmpClient *c) {
        _cleanup_(json_decrefp) json_t *getfd = NULL, *change = NULL;
        int pair[2], r;

        if (!vm->console)
                return 0;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        r = console_attach(vm->console, pair[0]);
        if (r < 0) {
                safe_close(pair[1]);
                return r;
        }
        getfd = json_pack("{s:s}", "fdname", VMSUP_SERIAL_ID);
        change = json_pack("{s:s, s:{s:s, s:{s:{s:s, s:{s:s}}, s:b}}}", "id", VMSUP_SERIAL_ID, "backend", "type",
                           "socket", "data", "addr", "type", "fd", "data", "str", VMSUP_SERIAL_ID, "server", 0);
        if (!getfd || !change) {
                safe_close(pair[1]);
                return -ENOMEM;
        }
        r = qmp_send_fd(c, "getfd", getfd, pair[1], 0, on_serial_reply, vm, NULL);
        if (r < 0)
                return r;
        return qmp_send(c, "chardev-change", change, 0, on_serial_reply, vm, NULL);
}

static void vm_adopt_ready(Vm *vm);

/* An incoming run's QMP is up: everything a start does but "cont"; the migration takes it
 * from here (its stream is handed to QEMU, the guest's state arrives). */
static void vm_incoming_ready(Vm *vm, QmpClient *c) {
        int r;

        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        r = vm_serial_attach(vm, c);
        if (r < 0) {
                log_warning_errno(r, "VM %s: cannot take over the serial port: %m", vm->config->name);
                console_detach(vm->console);
        }
        set_string(&vm->qemu_version, qmp_client_version(c));
        vm_emit_properties_changed(vm, "QemuVersion");
        r = vm_agent_connect(vm);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot connect the agent channel, continuing without: %m",
                                  vm->config->name);
        vm_set_state(vm, VM_INCOMING, "incoming");
        if (vm->migration_hooks && vm->migration_hooks->incoming_ready)
                vm->migration_hooks->incoming_ready(vm, vm->migration_userdata);
}

void vm_incoming_done(Vm *vm) {
        vm->incoming = false;
        vm_set_state(vm, VM_RUNNING, "migrated");
        /* The guest's agent opened its port on the source: no VSERPORT_CHANGE says so here. */
        if (vm->qga) {
                vm->agent_port_open = true;
                (void) qga_client_resync(vm->qga);
        }
        if (vm->on_settled)
                vm->on_settled(vm);
}

void vm_abort_run(Vm *vm, const char *reason) {
        if (!vm_is_active(vm))
                return;
        set_string(&vm->kill_reason, reason);
        vm->host_stop_requested = true;
        vm_kill(vm, SIGKILL);
}

void vm_set_migration_state(Vm *vm, VmState state, const char *reason) {
        vm_set_state(vm, state, reason);
}

static void stop_arm_timer(Vm *vm);

void vm_finish_migration_out(Vm *vm) {
        if (!vm_is_active(vm))
                return;
        vm->migrated_out = true;
        vm->host_stop_requested = true;
        if (vm->stop_phase > 0)
                return;
        vm->stop_phase = 1;
        if (vm->qmp && qmp_client_is_ready(vm->qmp) && qmp_send(vm->qmp, "quit", NULL, 0, NULL, NULL, NULL) >= 0) {
                stop_arm_timer(vm);
                return;
        }
        vm->stop_phase = 2;
        vm_kill(vm, SIGTERM);
        stop_arm_timer(vm);
}

static void on_qmp_ready(QmpClient *c, void *userdata) {
        Vm *vm = userdata;
        int r;

        if (vm->adopting) {
                vm_adopt_ready(vm);
                return;
        }
        log_debug("VM %s: QMP negotiated", vm->config->name);
        launch_note_running();
        vm_start_diag_close(vm);
        if (vm->incoming) {
                vm_incoming_ready(vm, c);
                return;
        }

        r = vm_serial_attach(vm, c);
        if (r < 0) {
                log_warning_errno(r, "VM %s: cannot take over the serial port: %m", vm->config->name);
                console_detach(vm->console);
        }
        set_string(&vm->qemu_version, qmp_client_version(c));
        vm_emit_properties_changed(vm, "QemuVersion");
        r = vm_agent_connect(vm);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot connect the agent channel, continuing without: %m",
                                  vm->config->name);
        if (vm->start_paused) {
                /* QEMU came up with -S: the CPUs stay stopped until Resume. */
                vm_set_state(vm, VM_PAUSED, "start-paused");
                vm_start_completed(vm);
                return;
        }
        r = qmp_send(c, "cont", NULL, 0, on_cont_reply, vm, NULL);
        if (r < 0) {
                set_string(&vm->kill_reason, "start-failed: cannot send cont");
                vm_kill(vm, SIGKILL);
        }
}

static void on_query_status_reason(QmpClient *c, int error, json_t *result, const char *err_class,
                                   const char *err_desc, void *userdata) {
        Vm *vm = userdata;
        json_t *st;

        if (error < 0 || vm->state != VM_PAUSED)
                return;
        st = json_object_get(result, "status");
        if (json_is_string(st) && !streq(json_string_value(st), "paused"))
                vm_set_state(vm, VM_PAUSED, json_string_value(st));
}

static void on_qmp_event(QmpClient *c, const char *name, json_t *data, uint64_t timestamp_usec,
                         void *userdata) {
        Vm *vm = userdata;
        VmEventEffect e;

        vm_emit_event(vm, name, data, timestamp_usec);

        if (!vm_state_event(&(VmEventInput) { .state = vm->state, .pause_requested = vm->pause_requested,
                                              .resume_requested = vm->resume_requested, .have_agent = vm->qga },
                            name, data, &e)) {
                if (vm->migration_hooks && vm->migration_hooks->event)
                        vm->migration_hooks->event(vm, name, data, vm->migration_userdata);
                return;
        }
        if (vm->migrated_out)
                e.set_state = false; /* the VM has moved: it stays migrating until QEMU is gone */
        if (e.shutdown_reason)
                set_string(&vm->shutdown_reason, e.shutdown_reason);
        if (e.save_state_before_shutdown)
                vm->state_before_shutdown = vm->state;
        if (e.guest_panicked)
                vm->guest_panicked = true;
        if (e.set_state)
                vm_set_state(vm, e.state, e.reason);
        if (e.start_completed)
                vm_start_completed(vm);
        if (e.guest_reset && vm->reboot_pending && vm->state == VM_RUNNING) {
                /* The guest rebooted in place (guest-shutdown mode reboot): it runs again. */
                vm->reboot_pending = false;
                waiters_answer(vm, 1U << VM_WAIT_REBOOT, NULL, NULL);
        }
        if (e.query_status)
                (void) qmp_send(c, "query-status", NULL, 0, on_query_status_reason, vm, NULL);
        if (e.clear_pause_requested)
                vm->pause_requested = false;
        if (e.clear_resume_requested)
                vm->resume_requested = false;
        if (e.agent_handles_reset)
                vm->agent_generation++; /* the agent numbers its handles afresh */
        if (e.agent_port >= 0) {
                vm->agent_port_open = e.agent_port;
                if (vm->agent_port_open)
                        (void) qga_client_resync(vm->qga);
                else {
                        /* Nobody will answer what is in flight: fail it now rather than
                         * at its timeout, and wait on a fresh connection for the next
                         * agent (QEMU's chardev accepts it once the old one is gone). */
                        qga_client_detach(vm->qga);
                        int r = vm_agent_connect(vm);
                        if (r < 0)
                                log_warning_errno(r, "VM %s: cannot reconnect the agent channel: %m",
                                                  vm->config->name);
                        if (vm->agent_connected) {
                                vm->agent_connected = false;
                                vm_emit_properties_changed(vm, "AgentConnected");
                        }
                }
        }
}

static int on_qmp_lost_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;

        vm->qmp_lost_timer = sd_event_source_disable_unref(vm->qmp_lost_timer);
        if (!vm_is_active(vm))
                return 0;
        log_warning("VM %s: QMP connection lost but QEMU keeps running, killing it", vm->config->name);
        vm_flight_dump(vm, "QMP lost");
        if (!vm->shutdown_reason && vm->state != VM_STARTING)
                set_string(&vm->kill_reason, "qmp-connection-lost");
        vm_kill(vm, SIGKILL);
        return 0;
}

static void on_qmp_disconnect(QmpClient *c, int error, void *userdata) {
        Vm *vm = userdata;
        int r;

        if (!vm_is_active(vm))
                return;
        if (error < 0) {
                /* A protocol violation: QEMU cannot be trusted to be managed any more. */
                log_warning_errno(error, "VM %s: QMP protocol error, killing QEMU: %m", vm->config->name);
                vm_flight_dump(vm, "QMP failed");
                if (!vm->shutdown_reason && vm->state != VM_STARTING)
                        set_string(&vm->kill_reason, "qmp-protocol-error");
                vm_kill(vm, SIGKILL);
                return;
        }
        /* EOF: usually QEMU is exiting and its exit status arrives a moment later and tells
         * why. If it does not, QEMU lives on without its monitor: end it rather than leave it
         * unmanaged. */
        if (vm->stop_phase > 0 || vm->qmp_lost_timer)
                return;
        r = sd_event_add_time_relative(vm->event, &vm->qmp_lost_timer, CLOCK_MONOTONIC, VM_QMP_LOST_GRACE_USEC, 0,
                                       on_qmp_lost_timeout, vm);
        if (r < 0)
                (void) on_qmp_lost_timeout(NULL, 0, vm);
}

static void on_qmp_anomaly(QmpClient *c, const char *what, void *userdata) {
        Vm *vm = userdata;

        log_warning("VM %s: QMP protocol anomaly: %s", vm->config->name, what);
}

static const QmpCallbacks qmp_callbacks = {
        .on_ready = on_qmp_ready,
        .on_event = on_qmp_event,
        .on_disconnect = on_qmp_disconnect,
        .on_anomaly = on_qmp_anomaly,
};

static void on_qga_connected_changed(QgaClient *c, bool connected, void *userdata) {
        Vm *vm = userdata;

        if (vm->agent_connected == connected)
                return;
        vm->agent_connected = connected;
        log_debug("VM %s: agent %s", vm->config->name, connected ? "connected" : "disconnected");
        vm_emit_properties_changed(vm, "AgentConnected");
}

static const QgaCallbacks qga_callbacks = {
        .on_connected_changed = on_qga_connected_changed,
};

/* ---- start ---- */

/* DIR/NAME as a socket address. */
static int socket_address(const char *dir, const char *name, struct sockaddr_un *ret) {
        int r;

        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        r = snprintf(ret->sun_path, sizeof ret->sun_path, "%s/%s", dir, name);
        if (r < 0 || (size_t) r >= sizeof ret->sun_path)
                return -ENAMETOOLONG;
        return 0;
}

static int make_listen_socket(const char *dir, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        int r;

        r = socket_address(dir, name, &sa);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (unlink(sa.sun_path) < 0 && errno != ENOENT)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        if (chmod(sa.sun_path, 0600) < 0)
                return -errno;
        if (listen(fd, 1) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* A non-blocking connection to one of the sockets QEMU inherited: it listens already, so the
 * backlog takes us at once, even before QEMU accepts. */
static int connect_socket(const char *dir, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        int r;

        r = socket_address(dir, name, &sa);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int on_start_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;

        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        if (vm->state == VM_STARTING && vm->adopting) {
                /* A QEMU whose monitor does not answer cannot be managed: stop it, and say why. */
                log_warning("VM %s: the adopted QEMU does not answer on QMP, killing it", vm->config->name);
                set_string(&vm->kill_reason, "reattach-failed: QMP does not answer");
                vm_kill(vm, SIGKILL);
        } else if (vm->state == VM_STARTING) {
                log_warning("VM %s: QEMU did not come up in time, killing it", vm->config->name);
                vm_flight_dump(vm, "start timed out");
                set_string(&vm->kill_reason, "timeout waiting for QMP");
                vm_kill(vm, SIGKILL);
        }
        return 0;
}

int vm_start(Vm *vm, sd_bus_message *m) {
        return vm_start_with(vm, m, false);
}

static void vm_launch_failed(Vm *vm, int r) {
        _cleanup_free_ char *why = NULL, *msg = NULL;
        bool incoming = vm->incoming;

        vm->incoming = false;
        if (asprintf(&why, "%s: %s%s", incoming ? "migration-failed" : "start-failed", r == -ENOENT ? "QEMU binary not found: " : "",
                     r == -ENOENT ? vm->config->binary :
                     r == -ECHILD ? "the QEMU launcher is gone" : strerror(-r)) < 0)
                why = NULL;
        log_error_errno(r, "Failed to launch QEMU: %m");
        vm_flight_dump(vm, "launch failed");
        vm_set_state(vm, VM_STOPPED, why ?: "start-failed");
        if (asprintf(&msg, "QEMU could not be started: %s.", why ?: strerror(-r)) < 0)
                msg = NULL;
        vm->reboot_pending = false;
        waiters_answer(vm, 1U << VM_WAIT_START | 1U << VM_WAIT_REBOOT, VMSUP_ERROR_QEMU_ERROR,
                       msg ?: "QEMU could not be started.");
        if (incoming && vm->migration_hooks && vm->migration_hooks->ended)
                vm->migration_hooks->ended(vm, vm->migration_userdata);
        if (vm->on_settled)
                vm->on_settled(vm);
}

/* The launcher's answer: QEMU runs (or did not start). */
static void on_launched(int error, LaunchResult *lr, void *userdata) {
        _cleanup_close_ int qmp_fd = -EBADF, exit_fd = -EBADF, stderr_fd = -EBADF;
        Vm *vm = userdata;
        int r;

        vm->launching = false;
        if (error < 0) {
                vm_launch_failed(vm, error);
                return;
        }
        qmp_fd = lr->qmp_fd;
        exit_fd = lr->exit_fd;
        stderr_fd = lr->stderr_fd;
        log_debug("VM %s: QMP connection fd %d", vm->config->name, qmp_fd);
        vm->pid = lr->pid;
        vm->pidfd = lr->pidfd;
        vm->stderr_fd = TAKE_FD(stderr_fd);
        vm->started_at_usec = now_usec(CLOCK_REALTIME);
        vm->started_at_mono = now_usec(CLOCK_MONOTONIC);
        /* Until QMP is negotiated: what either side left unread on it tells, if the start
         * fails, which side stopped talking. */
        vm->start_qmp_fd = fcntl(qmp_fd, F_DUPFD_CLOEXEC, 3);

        r = sd_event_add_io(vm->event, &vm->child_source, exit_fd, EPOLLIN, on_exit_report, vm);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_io_fd_own(vm->child_source, true);
        exit_fd = -EBADF;
        r = sd_event_add_io(vm->event, &vm->stderr_source, vm->stderr_fd, EPOLLIN, on_stderr, vm);
        if (r < 0)
                goto fail;
        r = qmp_client_new(vm->event, TAKE_FD(qmp_fd), &qmp_callbacks, vm, &vm->qmp);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(vm->event, &vm->start_timer, CLOCK_MONOTONIC, VM_START_TIMEOUT_USEC, 0,
                                       on_start_timeout, vm);
        if (r < 0)
                goto fail;

        log_info("VM %s: QEMU started%s, pid %d", vm->config->name, vm->incoming ? " for an incoming migration" : "",
                 (int) vm->pid);
        vm_set_state(vm, VM_STARTING, vm->incoming ? "incoming" : "start");
        vm_emit_properties_changed(vm, "Pid");
        vm_emit_properties_changed(vm, "StartedAtUSec");
        if (vm->exit_when_stopped) {
                /* The supervisor was told to stop while the launcher forked: this QEMU has
                 * run nothing yet. */
                log_info("VM %s: stopping the QEMU that just started: the supervisor is stopping", vm->config->name);
                set_string(&vm->kill_reason, "start-failed: the supervisor is stopping");
                vm_kill(vm, SIGKILL);
        }
        return;

fail:
        log_error_errno(r, "Failed to watch QEMU: %m");
        vm_kill(vm, SIGKILL);
        /* The exit report (if it is watched) ends the run and answers the waiters; otherwise
         * the launcher reaps QEMU and nobody listens. */
        if (!vm->child_source) {
                bool incoming = vm->incoming;

                vm_cleanup_run(vm);
                vm->incoming = incoming; /* the failure's reason says which kind of start */
                vm_launch_failed(vm, r);
        } else
                set_string(&vm->kill_reason, "start-failed: internal error");
}

bool vm_is_starting(const Vm *vm) {
        return vm->launching || vm->state == VM_STARTING;
}

static int vm_launch(Vm *vm, sd_bus_message *m, bool paused, bool incoming);

int vm_start_with(Vm *vm, sd_bus_message *m, bool paused) {
        return vm_launch(vm, m, paused, false);
}

int vm_start_incoming(Vm *vm) {
        if (vm_is_starting(vm) || vm_is_active(vm))
                return -EBUSY;
        return vm_launch(vm, NULL, false, true);
}

static int vm_launch(Vm *vm, sd_bus_message *m, bool paused, bool incoming) {
        _cleanup_close_ int qga_listen = -EBADF;
        int r;

        if (vm_is_starting(vm))
                return waiter_add(vm, VM_WAIT_START, m, 0, false);
        if (vm_is_active(vm))
                return -EBUSY;
        /* The launcher is taking a definition: which one this QEMU would start from is known
         * only after its answer. */
        if (launch_busy_reloading())
                return -EAGAIN;

        if (vm->qga && vm_config_has_agent_device(vm->config)) {
                qga_listen = make_listen_socket(vm->runtime_dir, "qga.sock");
                if (qga_listen < 0)
                        return log_error_errno(qga_listen, "Failed to create the agent socket: %m");
        }

        /* Forget the previous run's facts. */
        vm->flight_dumped = vm->flight_noted = false;
        vm_start_diag_close(vm);
        vm->shutdown_reason = mfree(vm->shutdown_reason);
        vm->kill_reason = mfree(vm->kill_reason);
        vm->guest_panicked = false;
        vm->stderr_len = 0;
        vm->stderr_last[0] = '\0';

        /* QMP runs on a socket pair the launcher connects before QEMU exists: QEMU's monitor
         * gets a connection, not a listener. With a listener and our connection already in
         * its backlog (as this was done before), QEMU 7.2 watches the listener from its main
         * loop until the monitor's I/O thread takes it over; on a loaded host both threads
         * could see it readable, one accepted our connection and the other blocked in
         * accept() for good. When the main thread was the one blocked, QEMU greeted (from the
         * I/O thread) but never executed qmp_capabilities, and the start timed out. A
         * connected chardev is set up before the monitor exists and never accepted, so no
         * thread races for it. The launcher answers on the loop (on_launched()). */
        /* The launcher starts QEMU from the definition last reloaded: so does everything that
         * reads QEMU's settings from now on. */
        vm_reload_apply_pending(vm);
        log_info("VM %s: asking the launcher for a QEMU", vm->config->name);
        r = launch_qemu(qga_listen, incoming, on_launched, vm);
        if (r < 0) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "%s: %s", incoming ? "migration-failed" : "start-failed", r == -ECHILD ? "the QEMU launcher is gone" : strerror(-r)) < 0)
                        why = NULL;
                log_error_errno(r, "Failed to launch QEMU: %m");
                vm_flight_dump(vm, "launch failed");
                vm_set_state(vm, VM_STOPPED, why ?: "start-failed");
                return r;
        }
        vm->launching = true;
        vm->start_paused = paused;
        vm->incoming = incoming;
        r = waiter_add(vm, VM_WAIT_START, m, 0, false);
        if (r < 0)
                log_warning_errno(r, "VM %s: the caller will not hear when the VM runs: %m", vm->config->name);
        return 0;
}

/* ---- adoption of a QEMU a previous supervisor left ---- */

static void on_adopt_version(QmpClient *c, int error, json_t *result, const char *err_class,
                             const char *err_desc, void *userdata) {
        Vm *vm = userdata;
        json_t *q = json_object_get(result, "qemu");
        char v[64];

        if (error < 0 || !json_is_object(q))
                return;
        (void) snprintf(v, sizeof v, "%lld.%lld.%lld", (long long) json_integer_value(json_object_get(q, "major")),
                        (long long) json_integer_value(json_object_get(q, "minor")),
                        (long long) json_integer_value(json_object_get(q, "micro")));
        set_string(&vm->qemu_version, v);
        vm_emit_properties_changed(vm, "QemuVersion");
}

static void on_adopt_status(QmpClient *c, int error, json_t *result, const char *err_class,
                            const char *err_desc, void *userdata) {
        Vm *vm = userdata;
        const char *st = json_string_value(json_object_get(result, "status"));
        VmState state;

        if (!vm->adopting)
                return;
        if (error < 0 || !st) {
                log_error("VM %s: the adopted QEMU does not say whether it runs (%s), stopping it",
                          vm->config->name, err_desc ?: strerror(-error));
                set_string(&vm->kill_reason, "reattach-failed");
                vm_kill(vm, SIGKILL);
                return;
        }
        vm->adopting = false;
        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        if (streq(st, "running"))
                state = VM_RUNNING;
        else if (streq(st, "suspended"))
                state = VM_SUSPENDED;
        else if (streq(st, "shutdown"))
                state = VM_SHUTTING_DOWN;
        else
                state = json_is_true(json_object_get(result, "running")) ? VM_RUNNING : VM_PAUSED;
        log_info("VM %s: reattached to QEMU pid %d, %s (QEMU says %s)", vm->config->name, (int) vm->pid,
                 vm_state_to_string(state), st);
        vm_set_state(vm, state, "reattached");
        if (vm->on_settled)
                vm->on_settled(vm);
}

static void vm_adopt_ready(Vm *vm) {
        int r;

        /* The guest's agent had opened its port long ago: no VSERPORT_CHANGE will say so. */
        if (vm->qga) {
                int fd = connect_socket(vm->runtime_dir, "qga.sock");
                if (fd >= 0) {
                        vm->agent_port_open = true;
                        r = qga_client_attach(vm->qga, fd, true);
                } else
                        r = fd;
                if (r < 0)
                        log_warning_errno(r, "VM %s: cannot reconnect the agent channel: %m", vm->config->name);
        }
        /* The serial port's socket went with the previous supervisor: a fresh one, as at start. */
        r = vm_serial_attach(vm, vm->qmp);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot take over the serial port again: %m", vm->config->name);
        (void) qmp_send(vm->qmp, "query-version", NULL, 0, on_adopt_version, vm, NULL);
        r = qmp_send(vm->qmp, "query-status", NULL, 0, on_adopt_status, vm, NULL);
        if (r < 0)
                on_adopt_status(vm->qmp, r, NULL, NULL, NULL, vm);
}

int vm_adopt(Vm *vm, LaunchAdoption *a, const char *version) {
        uint64_t start_ticks;
        int r;

        if (vm_is_active(vm) || !a->alive)
                return -EBUSY;
        vm->pid = a->pid;
        vm->pidfd = TAKE_FD(a->pidfd);
        vm->adopting = true;
        vm->started_at_mono = now_usec(CLOCK_MONOTONIC);
        vm->started_at_usec = now_usec(CLOCK_REALTIME);
        if (proc_start_time(vm->pid, &start_ticks) >= 0) {
                /* When QEMU really started: boot time + ticks. */
                struct timespec bt;
                long hz = sysconf(_SC_CLK_TCK);
                if (hz > 0 && clock_gettime(CLOCK_BOOTTIME, &bt) == 0) {
                        uint64_t up = (uint64_t) bt.tv_sec * USEC_PER_SEC + (uint64_t) bt.tv_nsec / 1000;
                        uint64_t since = start_ticks * (USEC_PER_SEC / (uint64_t) hz);
                        if (since <= up) {
                                vm->started_at_usec -= up - since;
                                if (vm->started_at_mono > up - since)
                                        vm->started_at_mono -= up - since;
                        }
                }
        }
        r = sd_event_add_io(vm->event, &vm->child_source, a->exit_fd, EPOLLIN, on_exit_report, vm);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_io_fd_own(vm->child_source, true);
        a->exit_fd = -EBADF;
        r = qmp_client_adopt(vm->event, TAKE_FD(a->qmp_fd), version, &qmp_callbacks, vm, &vm->qmp);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(vm->event, &vm->start_timer, CLOCK_MONOTONIC, VM_START_TIMEOUT_USEC, 0,
                                       on_start_timeout, vm);
        if (r < 0)
                goto fail;
        log_info("VM %s: taking over QEMU pid %d from the previous supervisor", vm->config->name, (int) vm->pid);
        vm_set_state(vm, VM_STARTING, "reattaching");
        vm_emit_properties_changed(vm, "Pid");
        vm_emit_properties_changed(vm, "StartedAtUSec");
        return 0;
fail:
        /* Leave QEMU alone: closing our descriptors hands it back to its launcher. */
        log_error_errno(r, "VM %s: cannot take over QEMU: %m", vm->config->name);
        vm->adopting = false;
        vm_cleanup_run(vm);
        return r;
}

void vm_adopt_exited(Vm *vm, pid_t pid, int code, int status) {
        VmExitOutcome end;

        if (code == 0) {
                log_warning("VM %s: QEMU (pid %d) ended with its launcher while no supervisor ran", vm->config->name,
                            (int) pid);
                vm_set_state(vm, VM_CRASHED, "lost-with-its-launcher");
                return;
        }
        vm_state_exit(&(VmExitInput) { .state = VM_RUNNING, .code = code, .status = status }, &end);
        log_warning("VM %s: QEMU (pid %d) %s while no supervisor ran", vm->config->name, (int) pid, end.status);
        vm_set_state(vm, end.state, end.reason);
}

/* ---- stop and shutdown ---- */

static int on_stop_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void stop_arm_timer(Vm *vm) {
        int r;

        vm->stop_timer = sd_event_source_disable_unref(vm->stop_timer);
        r = sd_event_add_time_relative(vm->event, &vm->stop_timer, CLOCK_MONOTONIC, VM_STOP_GRACE_USEC, 0,
                                       on_stop_timer, vm);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the stop timer, killing QEMU now: %m");
                vm_kill(vm, SIGKILL);
        }
}

static int on_stop_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;

        vm->stop_timer = sd_event_source_disable_unref(vm->stop_timer);
        if (!vm_is_active(vm))
                return 0;
        if (vm->stop_phase < 2) {
                log_info("VM %s: QEMU still running after quit, sending SIGTERM", vm->config->name);
                vm->stop_phase = 2;
                vm_kill(vm, SIGTERM);
                stop_arm_timer(vm);
        } else {
                log_warning("VM %s: QEMU ignores SIGTERM, sending SIGKILL", vm->config->name);
                vm->stop_phase = 3;
                vm_kill(vm, SIGKILL);
        }
        return 0;
}

static void on_quit_reply(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                          void *userdata) {
        /* Nothing to do: the process exit ends the stop. */
}

static void vm_begin_hard_stop(Vm *vm) {
        if (!vm_is_active(vm) || vm->stop_phase > 0)
                return;
        vm->stop_phase = 1;
        if (vm->state != VM_STARTING)
                vm_set_state(vm, VM_STOPPING, "host-stop");
        if (vm->qmp && qmp_client_is_ready(vm->qmp) &&
            qmp_send(vm->qmp, "quit", NULL, 0, on_quit_reply, vm, NULL) >= 0) {
                stop_arm_timer(vm);
                return;
        }
        vm->stop_phase = 2;
        vm_kill(vm, SIGTERM);
        stop_arm_timer(vm);
}

int vm_stop(Vm *vm, sd_bus_message *m) {
        int r;

        if (!vm_is_active(vm))
                return -ESRCH;
        r = waiter_add(vm, VM_WAIT_EXIT, m, 0, false);
        if (r < 0)
                return r;
        vm->host_stop_requested = true;
        vm_begin_hard_stop(vm);
        return 0;
}

static void on_powerdown_reply(QmpClient *c, int error, json_t *result, const char *err_class,
                               const char *err_desc, void *userdata) {
        Vm *vm = userdata;

        if (error < 0)
                log_warning("VM %s: system_powerdown failed: %s", vm->config->name, err_desc ?: strerror(-error));
}

static void send_powerdown(Vm *vm) {
        if (!vm->qmp || qmp_send(vm->qmp, "system_powerdown", NULL, 0, on_powerdown_reply, vm, NULL) < 0)
                log_warning("VM %s: cannot send system_powerdown", vm->config->name);
}

static void on_guest_shutdown_reply(QgaClient *c, int error, json_t *result, const char *err_class,
                                    const char *err_desc, void *userdata) {
        Vm *vm = userdata;

        if (error >= 0 || !vm_is_running(vm) || vm->state != VM_SHUTTING_DOWN)
                return;
        log_info("VM %s: guest-shutdown through the agent failed (%s), using ACPI", vm->config->name,
                 err_desc ?: strerror(-error));
        send_powerdown(vm);
}

int vm_shutdown(Vm *vm, unsigned timeout_sec, bool force, sd_bus_message *m) {
        uint64_t timeout = (uint64_t) (timeout_sec ?: vm->config->shutdown_timeout_sec) * USEC_PER_SEC;
        int r;

        if (!vm_is_active(vm))
                return -ESRCH;
        if (vm->state == VM_STARTING || vm->state == VM_STOPPING) {
                /* Nothing to ask a guest that does not run yet: stop it. */
                r = waiter_add(vm, VM_WAIT_EXIT, m, 0, false);
                if (r < 0)
                        return r;
                vm->host_stop_requested = true;
                vm_begin_hard_stop(vm);
                return 0;
        }
        r = waiter_add(vm, VM_WAIT_SHUTDOWN, m, timeout, force);
        if (r < 0)
                return r;
        vm->host_stop_requested = true;
        if (vm->state == VM_SHUTTING_DOWN)
                return 0; /* already asked */

        vm->state_before_shutdown = vm->state;
        if (vm->config->agent && vm->qga && vm->agent_connected &&
            qga_send(vm->qga, "guest-shutdown", NULL, QGA_REPLY_NONE, 0, 0, on_guest_shutdown_reply, vm, NULL) >= 0) {
                vm_set_state(vm, VM_SHUTTING_DOWN, "host-qga-guest-shutdown");
                return 0;
        }
        vm_set_state(vm, VM_SHUTTING_DOWN, "host-qmp-system-powerdown");
        send_powerdown(vm);
        return 0;
}

static void on_guest_reboot_reply(QgaClient *c, int error, json_t *result, const char *err_class,
                                  const char *err_desc, void *userdata) {
        Vm *vm = userdata;

        if (error >= 0 || !vm->reboot_pending || !vm_is_running(vm) || vm->state != VM_RUNNING)
                return;
        log_info("VM %s: guest-shutdown mode reboot through the agent failed (%s), using ACPI", vm->config->name,
                 err_desc ?: strerror(-error));
        vm->state_before_shutdown = vm->state;
        vm_set_state(vm, VM_SHUTTING_DOWN, "host-reboot-system-powerdown");
        send_powerdown(vm);
}

int vm_reboot(Vm *vm, unsigned timeout_sec, sd_bus_message *m) {
        uint64_t timeout = timeout_sec > 0 ? (uint64_t) timeout_sec * USEC_PER_SEC :
                                             (uint64_t) vm->config->shutdown_timeout_sec * USEC_PER_SEC + VM_START_TIMEOUT_USEC;
        _cleanup_(json_decrefp) json_t *args = NULL;
        int r;

        if (!vm_is_running(vm) && !(vm->reboot_pending && vm_is_active(vm)))
                return -ESRCH;
        if (vm->reboot_pending)
                return waiter_add(vm, VM_WAIT_REBOOT, m, timeout, false); /* one reboot, answered to all */
        if (vm->state != VM_RUNNING || vm->host_stop_requested)
                return -EBUSY;
        r = waiter_add(vm, VM_WAIT_REBOOT, m, timeout, false);
        if (r < 0)
                return r;
        vm->reboot_pending = true;

        args = json_pack("{s:s}", "mode", "reboot");
        if (args && vm->config->agent && vm->qga && vm->agent_connected &&
            qga_send(vm->qga, "guest-shutdown", args, QGA_REPLY_NONE, 0, 0, on_guest_reboot_reply, vm, NULL) >= 0) {
                /* The guest resets in place (RESET), or with on_reboot=destroy QEMU exits and
                 * starts afresh: either way the state machine answers. */
                log_info("VM %s: reboot through the agent", vm->config->name);
                return 0;
        }
        vm->state_before_shutdown = vm->state;
        vm_set_state(vm, VM_SHUTTING_DOWN, "host-reboot-system-powerdown");
        send_powerdown(vm);
        return 0;
}

/* ---- object ---- */

int vm_new(sd_event *event, VmConfig *config, AclEntry *host_acl, size_t n_host_acl, const char *runtime_root,
           Vm **ret) {
        _cleanup_(vm_freep) Vm *vm = NULL;
        int r;

        vm = calloc(1, sizeof *vm);
        if (!vm)
                return -ENOMEM;
        vm->event = sd_event_ref(event);
        vm->pidfd = -EBADF;
        vm->stderr_fd = -EBADF;
        vm->start_qmp_fd = -EBADF;
        vm->state = VM_STOPPED;
        vm->state_reason = strdup("");
        if (asprintf(&vm->runtime_dir, "%s/%s", runtime_root, config->name) < 0 || !vm->state_reason)
                return -ENOMEM;
        if (mkdir(runtime_root, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", runtime_root);
        if (mkdir(vm->runtime_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", vm->runtime_dir);
        /* An existing directory may have other permissions: nobody else may reach the sockets. */
        if (chmod(vm->runtime_dir, 0700) < 0)
                return log_error_errno(errno, "Failed to restrict %s: %m", vm->runtime_dir);
        if (!streq(config->machine, "none")) {
                _cleanup_free_ char *log_path = NULL;

                if (asprintf(&log_path, "%s/console.log", vm->runtime_dir) < 0)
                        return -ENOMEM;
                r = console_new(event, config->name, log_path, config->console_log_kib * 1024U, &vm->console);
                if (r < 0)
                        return r;
        }
        if (vm_config_has_agent_device(config)) {
                r = qga_client_new(event, &qga_callbacks, vm, &vm->qga);
                if (r < 0)
                        return r;
        }
        vm->config = config;
        vm->host_acl = host_acl;
        vm->n_host_acl = n_host_acl;
        *ret = TAKE_PTR(vm);
        return 0;
}

Vm *vm_free(Vm *vm) {
        if (!vm)
                return NULL;
        if (vm->migration_hooks && vm->migration_hooks->vm_freed)
                vm->migration_hooks->vm_freed(vm, vm->migration_userdata);
        vm->migration_hooks = NULL;
        vm->migration_userdata = NULL;
        while (!LIST_IS_EMPTY(&vm->waiters)) {
                waiter_reply(vm->waiters.head->message, VMSUP_ERROR_NOT_RUNNING, "The supervisor is exiting.");
                waiter_free(vm->waiters.head);
        }
        /* A running QEMU stays with its launcher: the next supervisor adopts it. */
        vm->child_source = sd_event_source_disable_unref(vm->child_source);
        vm->stderr_source = sd_event_source_disable_unref(vm->stderr_source);
        vm->stop_timer = sd_event_source_disable_unref(vm->stop_timer);
        vm->start_timer = sd_event_source_disable_unref(vm->start_timer);
        vm->qmp_lost_timer = sd_event_source_disable_unref(vm->qmp_lost_timer);
        safe_close(vm->pidfd);
        safe_close(vm->stderr_fd);
        vm_start_diag_close(vm);
        qmp_client_free(vm->qmp);
        qga_client_free(vm->qga);
        console_free(vm->console);
        vm_config_free(vm->config);
        vm_reload_free(vm);
        vm_config_free(vm->pending);
        strv_free(vm->pending_keys);
        free(vm->acl_path);
        free(vm->host_acl);
        free(vm->runtime_dir);
        free(vm->state_reason);
        free(vm->qemu_version);
        free(vm->shutdown_reason);
        free(vm->kill_reason);
        sd_bus_unref(vm->bus);
        sd_event_unref(vm->event);
        free(vm);
        return NULL;
}
