/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Confinement of the three vmsup processes (see sandbox.h):
 *   vmsupd    uid 0, no capabilities but CAP_KILL when QEMU runs as another user, NO_NEW_PRIVS,
 *             the allowlist below;
 *   launcher  uid 0, CAP_SETUID/SETGID/SETPCAP only when QEMU runs as run_as, NO_NEW_PRIVS, no
 *             filter (QEMU would inherit it);
 *   QEMU      run_as (or uid 0), no capabilities, empty bounding set, NO_NEW_PRIVS, its own
 *             -sandbox filter.
 * One function applies a policy, always in the same order (OpenSSH, crun): capabilities →
 * ids → rlimits → NO_NEW_PRIVS → seccomp. */

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <cap-ng.h>
#include <linux/capability.h>
#include <linux/sockios.h>

#include "log.h"
#include "sandbox.h"

static const char * const seccomp_mode_table[_SECCOMP_MODE_MAX] = {
        [SECCOMP_MODE_OFF] = "off",
        [SECCOMP_MODE_KILL] = "kill",
        [SECCOMP_MODE_LOG] = "log",
};

const char *seccomp_mode_to_string(SeccompMode m) {
        if (m < 0 || m >= _SECCOMP_MODE_MAX)
                return NULL;
        return seccomp_mode_table[m];
}

SeccompMode seccomp_mode_from_string(const char *s) {
        if (streq(s, "kill"))
                return SECCOMP_MODE_KILL;
        if (streq(s, "log"))
                return SECCOMP_MODE_LOG;
        return _SECCOMP_MODE_INVALID;
}

#if defined(__SANITIZE_ADDRESS__)
#define VMSUP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMSUP_SANITIZER 1
#endif
#endif

SeccompMode seccomp_mode_default(void) {
#ifdef VMSUP_SANITIZER
        return SECCOMP_MODE_LOG;
#else
        return SECCOMP_MODE_KILL;
#endif
}

/* ---- capabilities: the one place that says who keeps what, and why ---- */

uint64_t sandbox_supervisor_caps(const VmConfig *c) {
        uint64_t caps = 0;

        /* Signals to QEMU (Stop's SIGTERM/SIGKILL, kills on protocol errors) go through its
         * pidfd, but pidfd_send_signal() checks permission like kill(): a QEMU running as
         * run_as is another user's process. With run_as root QEMU is uid 0 like the supervisor. */
        if (c->has_run_as)
                caps |= SANDBOX_CAP(CAP_KILL);
        /* Nothing else: the supervisor's files (its runtime directory and sockets) are its own,
         * it reads QEMU's /proc/PID/stat (world-readable), and it forks nothing. */
        return caps;
}

uint64_t sandbox_launcher_caps(const VmConfig *c) {
        /* With run_as root, QEMU keeps the launcher's identity, uid 0 without capabilities, and
         * the launcher needs nothing to start it. */
        if (!c->has_run_as)
                return 0;
        /* QEMU's child: setgroups() and setresgid() (CAP_SETGID), setresuid() (CAP_SETUID), and
         * emptying the bounding set before that (CAP_SETPCAP). CAP_KILL: QEMU's parent-death
         * signal is sent with the dying launcher's credentials and checked like kill(), so
         * without it a QEMU of another uid would outlive the launcher; the launcher's own
         * SIGKILL of a QEMU nobody would manage needs it too. */
        return SANDBOX_CAP(CAP_SETUID) | SANDBOX_CAP(CAP_SETGID) | SANDBOX_CAP(CAP_SETPCAP) | SANDBOX_CAP(CAP_KILL);
}

/* ---- the supervisor's system calls ----
 * Measured: strace of vmsupd over the black-box suites (lifecycle, monitor, agent with the tiny
 * guest and its ReadFile/WriteFile traffic), from the filter's installation (after the bus name
 * is owned) to exit. Entries marked "not seen" were not in those runs but are paths libsystemd,
 * glibc or the kernel take in conditions the tests do not create; each says which. The
 * supervisor never forks, execs or makes threads after start-up: the launcher does the first
 * two, and the descriptor closer threads exist before the filter, which covers them too
 * (TSYNC). */
static const int supervisor_syscalls[] = {
        /* the event loop (sd-event) */
        SCMP_SYS(epoll_wait),
        SCMP_SYS(epoll_pwait2),   /* not seen: sd-event prefers it where libsystemd enables it */
        SCMP_SYS(epoll_ctl),
        SCMP_SYS(timerfd_settime),
        SCMP_SYS(timerfd_create), /* not seen: sd-event makes one per clock on its first timer */
        SCMP_SYS(signalfd4),      /* not seen: sd-event updates its mask when a signal source goes */
        SCMP_SYS(gettid),         /* sd-event and sd-bus: "am I still the process that made you?" */
        SCMP_SYS(getpid),         /* not seen: the same check in older code paths */
        SCMP_SYS(clock_gettime),  /* not seen: the vDSO's fallback when the clock source has none */
        SCMP_SYS(poll),           /* with a zero timeout: QMP's last words once QEMU has exited */
        SCMP_SYS(ppoll),          /* not seen: sd_bus_flush() at exit when output is queued */
        SCMP_SYS(restart_syscall), /* not seen: a poll with a timeout resumed after SIGSTOP/SIGCONT */
        SCMP_SYS(getrandom),      /* sd-bus cookies and hash seeds, the agent's sync ids */
        SCMP_SYS(getuid),         /* sd_notify() */
        SCMP_SYS(geteuid),
        SCMP_SYS(getgid),
        SCMP_SYS(getegid),

        /* descriptors: D-Bus, QMP, the agent, QEMU's stderr, the callers' ReadFile/WriteFile fds */
        SCMP_SYS(read),
        SCMP_SYS(write),
        SCMP_SYS(close),
        SCMP_SYS(fcntl),          /* O_NONBLOCK, F_DUPFD_CLOEXEC of callers' fds */
        SCMP_SYS(newfstatat),     /* fstat(): fopen() */
        SCMP_SYS(statx),          /* the type of a caller's ReadFile/WriteFile descriptor */
        SCMP_SYS(lseek),          /* not seen: fclose() of a partly read stream repositions it */
        SCMP_SYS(pipe2),          /* QEMU's stderr, at each Start */
        SCMP_SYS(sendmsg),        /* D-Bus (with SCM_RIGHTS), the launcher's requests */
        SCMP_SYS(recvmsg),        /* D-Bus (with SCM_RIGHTS), the launcher's answers */
        SCMP_SYS(sendto),         /* send() to QMP and the agent; sd_notify() */
        SCMP_SYS(connect),        /* the agent socket at each Start */
        SCMP_SYS(bind),           /* the agent's listening socket at each Start */
        SCMP_SYS(listen),
        SCMP_SYS(accept4),        /* direct D-Bus connections (bus-direct.c) */
        SCMP_SYS(getsockname),    /* sd-bus: what a direct connection's socket is */
        SCMP_SYS(setsockopt),     /* sd_notify(): SO_SNDBUF */
        SCMP_SYS(getsockopt),
        SCMP_SYS(shutdown),       /* a migration's disk stream: one direction ended (SHUT_WR) */

        /* files: the runtime directory's sockets, QEMU's /proc/PID/stat for GetStatus,
         * /proc/sys/kernel/random/boot_id (sd-event's timer coalescing) */
        SCMP_SYS(openat),
        SCMP_SYS(unlink),         /* a stale socket before bind() */
        SCMP_SYS(chmod),          /* the new sockets: 0600 */
        SCMP_SYS(rename),         /* the console log's rotation */
        SCMP_SYS(renameat),       /* not seen: the same through other libcs */
        SCMP_SYS(renameat2),
        SCMP_SYS(memfd_create),   /* a screenshot, written by QEMU, then copied to the caller; a reload's
                                   * definition for the launcher */
        SCMP_SYS(writev),         /* not seen: sd_journal_send() writes an audit record into a memfd
                                   * when the journal's socket refuses the datagram (ENOBUFS) */
        SCMP_SYS(pread64),
        SCMP_SYS(getdents64),     /* not seen: the flight recorder lists QEMU's threads after a failed start */

        SCMP_SYS(pidfd_send_signal), /* Stop and kills; the pidfd comes from the launcher */

        /* the descriptor closer threads (bus-fds.c), started before the filter: their queue's
         * lock, the timer that interrupts a lingering close and its signal, and kcmp() on the
         * loop: is a message's descriptor still the file we hold a copy of? */
        SCMP_SYS(futex),
        SCMP_SYS(timer_settime),
        SCMP_SYS(rt_sigreturn),
        SCMP_SYS(kcmp),

        /* memory: malloc (large blocks are mmap()ed), jansson, sd-bus message buffers */
        SCMP_SYS(brk),
        SCMP_SYS(munmap),
        SCMP_SYS(mremap),
        SCMP_SYS(madvise),        /* not seen: free() returning the top of a heap */

        SCMP_SYS(exit_group),
};

/* With argument rules, in sandbox_seccomp_new(). */
#define SUPERVISOR_SYSCALLS_WITH_ARGS 5

size_t sandbox_seccomp_allowlist_size(void) {
        return ELEMENTSOF(supervisor_syscalls) + SUPERVISOR_SYSCALLS_WITH_ARGS;
}

int sandbox_seccomp_new(SeccompMode mode, scmp_filter_ctx *ret) {
        scmp_filter_ctx ctx;
        uint32_t action;
        int r;

        if (!IN_SET(mode, SECCOMP_MODE_KILL, SECCOMP_MODE_LOG))
                return -EINVAL;
        action = mode == SECCOMP_MODE_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
        ctx = seccomp_init(action);
        if (!ctx)
                return -ENOMEM;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                goto fail;
        /* Every thread of the process, not only the caller's. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(supervisor_syscalls); i++) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, supervisor_syscalls[i], 0);
                if (r < 0)
                        goto fail;
        }
        /* Local sockets only: the agent, sd_notify(). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
        if (r < 0)
                goto fail;
        /* Local pairs only: the serial stream, console sessions, VNC viewers. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
        if (r < 0)
                goto fail;
        /* sd-bus asks how much a received message holds (FIONREAD); the flight recorder asks
         * the same of the QMP socket after a failed start, and how much QEMU left unread
         * (SIOCOUTQ); no other ioctl. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD));
        if (r < 0)
                goto fail;
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, SIOCOUTQ));
        if (r < 0)
                goto fail;
        /* Memory, never executable: the supervisor loads no code after start-up (no mprotect()
         * either). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                goto fail;
        *ret = ctx;
        return 0;
fail:
        seccomp_release(ctx);
        return r;
}

/* ---- applying a policy ---- */

static int cap_last(void) {
        static int last = -1;
        if (last < 0) {
                _cleanup_fclose_ FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
                if (!f || fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
                        last = CAP_LAST_CAP;
        }
        return last;
}

/* Reads the process's sets into masks through libcap-ng. */
static int caps_read(uint64_t *ret_eff, uint64_t *ret_prm, uint64_t *ret_inh, uint64_t *ret_bnd) {
        uint64_t eff = 0, prm = 0, inh = 0, bnd = 0;

        if (capng_get_caps_process() < 0)
                return -EIO;
        for (int cap = 0; cap <= cap_last(); cap++) {
                if (capng_have_capability(CAPNG_EFFECTIVE, cap) > 0)
                        eff |= SANDBOX_CAP(cap);
                if (capng_have_capability(CAPNG_PERMITTED, cap) > 0)
                        prm |= SANDBOX_CAP(cap);
                if (capng_have_capability(CAPNG_INHERITABLE, cap) > 0)
                        inh |= SANDBOX_CAP(cap);
                if (capng_have_capability(CAPNG_BOUNDING_SET, cap) > 0)
                        bnd |= SANDBOX_CAP(cap);
        }
        *ret_eff = eff;
        *ret_prm = prm;
        *ret_inh = inh;
        *ret_bnd = bnd;
        return 0;
}

static bool ambient_empty(void) {
        for (int cap = 0; cap <= cap_last(); cap++)
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
                        return false;
        return true;
}

static int apply_caps(const SandboxPolicy *p, uint64_t *ret_keep, bool *ret_unprivileged) {
        uint64_t eff, prm, inh, bnd, keep, hold;
        bool unprivileged = false;
        int r;

        r = caps_read(&eff, &prm, &inh, &bnd);
        if (r < 0)
                return r;
        /* A capability the process does not have cannot be kept. */
        keep = p->caps & prm;
        /* An id change needs CAP_SETUID/CAP_SETGID for one more step; setresuid() to a non-zero
         * uid then clears the permitted and effective sets (no PR_SET_KEEPCAPS). */
        hold = keep;
        if (p->change_ids)
                hold |= (SANDBOX_CAP(CAP_SETUID) | SANDBOX_CAP(CAP_SETGID)) & prm;

        capng_clear(CAPNG_SELECT_BOTH);
        for (int cap = 0; cap <= cap_last(); cap++) {
                if (keep & SANDBOX_CAP(cap) && capng_update(CAPNG_ADD, CAPNG_BOUNDING_SET, cap) < 0)
                        return -EINVAL;
                if (hold & SANDBOX_CAP(cap) && capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED, cap) < 0)
                        return -EINVAL;
        }
        /* The bounding set first: dropping from it needs CAP_SETPCAP, which the next step removes. */
        if (bnd & ~keep) {
                if (eff & SANDBOX_CAP(CAP_SETPCAP)) {
                        if (capng_apply(CAPNG_SELECT_BOUNDS) < 0)
                                return log_error_errno(errno ?: EPERM, "%s: failed to reduce the bounding set: %m",
                                                       p->who);
                } else if (prm != 0)
                        return log_error_errno(EPERM, "%s: cannot reduce the bounding set without CAP_SETPCAP",
                                               p->who);
                else
                        /* An unprivileged process (a developer's supervisor on a session bus):
                         * its bounding set cannot be emptied, and under NO_NEW_PRIVS it grants
                         * nothing back. */
                        unprivileged = true;
        }
        if (capng_apply(CAPNG_SELECT_CAPS) < 0)
                return log_error_errno(errno ?: EPERM, "%s: failed to set the capabilities: %m", p->who);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return log_error_errno(errno, "%s: failed to clear the ambient capabilities: %m", p->who);
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return log_error_errno(errno, "%s: failed to reset PR_SET_KEEPCAPS: %m", p->who);
        *ret_keep = keep;
        *ret_unprivileged = unprivileged;
        return 0;
}

static int apply_ids(const SandboxPolicy *p) {
        if (!p->change_ids)
                return 0;
        if (setgroups(p->n_groups, p->groups) < 0)
                return log_error_errno(errno, "%s: setgroups failed: %m", p->who);
        if (setresgid(p->gid, p->gid, p->gid) < 0)
                return log_error_errno(errno, "%s: setresgid(%u) failed: %m", p->who, (unsigned) p->gid);
        if (setresuid(p->uid, p->uid, p->uid) < 0)
                return log_error_errno(errno, "%s: setresuid(%u) failed: %m", p->who, (unsigned) p->uid);
        return 0;
}

/* Reads back what the kernel now says, so that a silently ignored step cannot pass. */
static int verify(const SandboxPolicy *p, uint64_t keep, bool unprivileged) {
        uint64_t eff, prm, inh, bnd;
        uid_t ru, eu, su;
        gid_t rg, eg, sg;
        int r;

        r = caps_read(&eff, &prm, &inh, &bnd);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read back the capabilities: %m", p->who);
        if (eff != keep || prm != keep || inh != 0 || !ambient_empty() || (bnd != keep && !unprivileged))
                return log_error_errno(EPERM, "%s: capabilities are eff=%#" PRIx64 " prm=%#" PRIx64 " inh=%#" PRIx64
                                       " bnd=%#" PRIx64 ", wanted %#" PRIx64, p->who, eff, prm, inh, bnd, keep);
        if (p->change_ids) {
                gid_t groups[65];
                int n;

                if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                        return -errno;
                if (ru != p->uid || eu != p->uid || su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid)
                        return log_error_errno(EPERM, "%s: ids did not change as asked", p->who);
                n = getgroups(ELEMENTSOF(groups), groups);
                if (n < 0 || (size_t) n != p->n_groups)
                        return log_error_errno(EPERM, "%s: supplementary groups did not change as asked", p->who);
                for (int i = 0; i < n; i++) {
                        bool found = false;
                        for (size_t j = 0; j < p->n_groups; j++)
                                found = found || groups[i] == p->groups[j];
                        if (!found)
                                return log_error_errno(EPERM, "%s: unexpected supplementary group %u", p->who,
                                                       (unsigned) groups[i]);
                }
        }
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return log_error_errno(EPERM, "%s: NO_NEW_PRIVS is not set", p->who);
        return 0;
}

int sandbox_apply(const SandboxPolicy *p) {
        uint64_t keep = 0;
        bool unprivileged = false;
        int r;

        /* 1. Capabilities. */
        r = apply_caps(p, &keep, &unprivileged);
        if (r < 0)
                return r;
        /* 2. Identity. */
        r = apply_ids(p);
        if (r < 0)
                return r;
        /* 3. Resource limits: none of our own; the service manager's (LimitNOFILE=, …) apply. */
        /* 4. No privilege from exec, ever again (setuid bits, file capabilities). */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "%s: PR_SET_NO_NEW_PRIVS failed: %m", p->who);
        r = verify(p, keep, unprivileged);
        if (r < 0)
                return r;
        /* 5. The system call filter, last: everything above needed calls it forbids. */
        if (p->seccomp != SECCOMP_MODE_OFF) {
                scmp_filter_ctx ctx = NULL;

                r = sandbox_seccomp_new(p->seccomp, &ctx);
                if (r < 0)
                        return log_error_errno(r, "%s: failed to build the system call filter: %m", p->who);
                r = seccomp_load(ctx);
                seccomp_release(ctx);
                if (r < 0)
                        return log_error_errno(r, "%s: failed to install the system call filter: %m", p->who);
        }
        return 0;
}
