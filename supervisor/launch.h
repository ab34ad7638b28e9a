/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "config.h"

/* Where the descriptors land in QEMU's process. */
#define LAUNCH_QMP_FD 3
#define LAUNCH_QGA_FD 4

/* The most descriptors one request carries. */
#define LAUNCH_FDS_MAX 3

/* How long the supervisor waits for the launcher's answer to a start request. */
#define LAUNCH_REPLY_TIMEOUT_MSEC 10000

typedef struct LaunchResult {
        pid_t pid;
        int pidfd;      /* QEMU's pidfd, for signals (the launcher is QEMU's parent); owned by the caller */
        int exit_fd;    /* readable once QEMU has exited, see launch_read_exit(); owned by the caller */
        int qmp_fd;     /* our end of QEMU's monitor connection (a stream socket pair), owned by the caller */
        int stderr_fd;  /* read end of QEMU's stdout+stderr, non-blocking, owned by the caller */
} LaunchResult;

/* Resolves c->binary (absolute, or through PATH). Returns 0 and a malloc'd path, or -ENOENT. */
int launch_resolve_binary(const VmConfig *c, char **ret);

/* The launcher: a child forked at start-up, before the supervisor drops its capabilities and
 * installs its system call filter (a filter is inherited by every descendant, and QEMU must
 * not start under the supervisor's). It knows only how to start this VM's QEMU, from the
 * definition it inherited at fork, and reads one kind of request on a SOCK_SEQPACKET pair:
 *
 *   supervisor → launcher  LaunchRequest { magic, LAUNCH_OP_START, n_fds }
 *                          + SCM_RIGHTS { stderr pipe [, agent listener] }
 *   launcher → supervisor  LaunchReply { magic, error (errno or 0), pid }
 *                          + SCM_RIGHTS { QEMU's pidfd, exit pipe, QMP socket } when error is 0
 *
 * The QMP socket is one end of a connected stream socket pair the launcher makes for each
 * start (the supervisor's system call filter has no socketpair()); QEMU gets the other end
 * as an already connected chardev, never a listener (see vm_start()).
 *
 * The launcher is QEMU's parent: it reaps it and writes one LaunchExit record (waitid()'s
 * si_code and si_status) to the exit pipe, then closes it. QEMU runs with everything
 * launch.c has always done (own session, PDEATHSIG, exactly the passed descriptors, run_as,
 * no capabilities, NO_NEW_PRIVS); the launcher has PDEATHSIG SIGKILL towards the supervisor,
 * and QEMU towards the launcher, so killing the supervisor ends both. The launcher holds
 * only the capabilities sandbox_launcher_caps() names, and NO_NEW_PRIVS.
 *
 * Files QEMU opens itself (kernel, initrd, drives, /dev/kvm, anything in extra_args) must be
 * accessible to run_as: nothing is opened on its behalf, and QEMU's own error ("Could not
 * open '…': Permission denied") is the start failure's reason.
 *
 * Call once, early, from a single-threaded process. Returns 0 or -errno. */
int launcher_fork(const VmConfig *c, const char *runtime_dir);

/* The launcher's listening socket in the VM's runtime directory (0600). It accepts a
 * connection only while no supervisor is connected, and only from the supervisor's user. */
#define LAUNCH_SOCKET "launcher.sock"

/* What a launcher left by a previous supervisor says (launch_adopt()). */
typedef struct LaunchAdoption {
        int sock;            /* the connection, which becomes the launcher's socket (launcher_use()) */
        pid_t launcher_pid;  /* its peer credentials */
        uid_t launcher_uid;
        bool alive;          /* QEMU runs: the descriptors below are set */
        pid_t pid;
        int code, status;    /* when !alive: how QEMU ended (CLD_*, status or signal) */
        int pidfd, exit_fd, qmp_fd;
} LaunchAdoption;

/* Connects to RUNTIME/LAUNCH_SOCKET and asks the launcher found there for its QEMU. Blocks
 * at most LAUNCH_REPLY_TIMEOUT_MSEC: call it at start-up, before the loop. Returns 0 and
 * fills ret; -errno when there is no launcher (-ENOENT, -ECONNREFUSED), -EPERM when the
 * socket's peer is another user (launcher_pid/uid are filled), -ESRCH when it has no QEMU.
 * Closing ret->sock (launch_adoption_release()) leaves QEMU running, unsupervised. */
int launch_adopt(const char *runtime_dir, LaunchAdoption *ret);
void launch_adoption_release(LaunchAdoption *a);
/* Makes the adopted launcher this supervisor's (instead of launcher_fork()). */
int launcher_use(LaunchAdoption *a);

/* The launcher's reading of one request from sock: the datagram and its descriptors are
 * validated completely (size, magic, operation, descriptor count and types) before anything
 * is started. Returns the number of descriptors (1 or 2: the stderr pipe, then the agent's listening socket if any; close-on-exec, now the caller's)
 * stored in fds; 0 at the end of the stream; -EAGAIN when nothing is there; -EBADMSG for a
 * malformed or truncated request (its descriptors closed); else -errno. */
int launch_request_recv(int sock, int fds[static LAUNCH_FDS_MAX]);

/* Watches the launcher on the loop: if it dies, the supervisor can start nothing any more,
 * so the loop exits with -ECHILD (the service manager restarts the supervisor). */
int launcher_attach(sd_event *e);

/* The launcher's answer to launch_qemu(): error 0 with lr filled (every descriptor the
 * callback's to own), or -errno with lr NULL: -ENOENT for a missing binary, -ETIMEDOUT when
 * no answer came within LAUNCH_REPLY_TIMEOUT_MSEC, -ECHILD when the launcher is gone,
 * -EBADMSG for a malformed answer. */
typedef void (*LaunchCallback)(int error, LaunchResult *lr, void *userdata);

/* Has the launcher start QEMU with its end of a new QMP connection and qga_listen_fd (may be
 * -1) at LAUNCH_QMP_FD and LAUNCH_QGA_FD, stdin from /dev/null and stdout+stderr into a pipe.
 * Never waits: the answer, which comes right after the launcher's fork(), is read on the
 * loop (launcher_attach() first) and handed to callback. One request at a time. Returns 0
 * when the request is sent (callback will be called exactly once), or
 * -errno: -ECHILD when there is no launcher, -EBUSY while a request (or a reload's late answer:
 * launch_reload()) is pending. Exec
 * failures show up as exit status 127 with the reason on the pipe. incoming: QEMU also gets
 * -incoming defer (a VM arriving by migration: migration.h); a launcher older than that
 * refuses the request (-EBADMSG). */
int launch_qemu(int qga_listen_fd, bool incoming, LaunchCallback callback, void *userdata);

/* A reload: the launcher re-reads the definition file and takes it for every later start
 * when it is byte for byte text (what the supervisor validated), parses and accepts it.
 * Never waits: the answer is read on the loop and handed to callback, exactly once when this
 * returns 0: error 0, or -EINVAL/-ESTALE/-EPERM/-ENOENT… with the launcher's reason ("FILE:
 * $.path: why", else NULL) in message; -EOPNOTSUPP from a launcher of an older vmsupd;
 * -ETIMEDOUT when no answer came within LAUNCH_REPLY_TIMEOUT_MSEC; -ECHILD when the launcher
 * is gone. Until a timed-out reload's late answer comes, the launcher gets no other request;
 * if it then took the definition (it reads the file itself: the one it held cannot be given
 * back), the callback of launch_on_late_reload() is called and no start is asked for until a
 * reload succeeds. Returns -ECHILD without a launcher, -EBUSY while another request waits for
 * its answer (one at a time). */
typedef void (*LaunchReloadCallback)(int error, const char *message, void *userdata);
int launch_reload(const char *text, size_t len, LaunchReloadCallback callback, void *userdata);
/* The pending reload made with userdata is nobody's any more: its answer calls nothing. */
void launch_reload_abandon(void *userdata);
/* A reload or its late answer is awaited, or the launcher took a definition late: no start
 * now (launch_qemu() is refused). */
bool launch_busy_reloading(void);
/* Called when the launcher took a definition after its reload had failed. */
typedef void (*LaunchLateCallback)(void *userdata);
void launch_on_late_reload(LaunchLateCallback callback, void *userdata);
/* As launch_reload(), before the loop (launcher_attach()): blocks at most
 * LAUNCH_REPLY_TIMEOUT_MSEC. Returns 0 or -errno with the launcher's reason, if any, in
 * *ret_error (malloc'd). */
int launch_reload_sync(const char *text, size_t len, char **ret_error);

/* QEMU is up: the launcher records what runs (the run record's executable after any
 * wrapper's exec). Nothing is answered. */
void launch_note_running(void);

/* Reads QEMU's exit from exit_fd into ret (si_code CLD_EXITED/CLD_KILLED/CLD_DUMPED, si_status).
 * The end of the pipe without a record means the launcher died, and QEMU with it (SIGKILL).
 * Returns 1 when ret is filled, 0 when nothing is there yet, -errno on failure. */
int launch_read_exit(int exit_fd, siginfo_t *ret);
