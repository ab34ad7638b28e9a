/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Closing callers' descriptors off the loop (bus-fds.h says why and how). */

#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "bus-fds.h"
#include "log.h"

/* How often the loop looks for messages gone since their descriptors were watched. */
#define WATCH_SWEEP_USEC (50U * USEC_PER_MSEC)
/* Ours is kept at least this long after the message arrived, so that the bus daemon, which
 * drops its own copy once it has passed the message on, is not the one left with the last
 * copy: a lingering close there would stall the whole bus. */
#define WATCH_GRACE_USEC (2U * USEC_PER_SEC)
/* 'h' values looked at in one message: D-Bus daemons pass at most a few descriptors per
 * message, and an array repeating one index thousands of times is no reason to spend time. */
#define WATCH_PER_MESSAGE_MAX 64U
/* D-Bus allows 32 levels of arrays and 32 of structs. */
#define WALK_DEPTH_MAX 64U

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

typedef struct Watch {
        int slot;      /* the message's descriptor, closed by sd-bus */
        int dup;       /* ours, closed by a closer thread once slot is gone */
        uint64_t since; /* CLOCK_MONOTONIC when the message arrived */
} Watch;

static struct {
        /* Loop thread only. */
        sd_bus_slot *filter;
        sd_event_source *sweep;
        Watch watch[BUS_FDS_WATCH_MAX];
        size_t n_watch;
        bool warned;
        /* Shared with the closers, under lock. */
        pthread_mutex_t lock;
        pthread_cond_t wake;
        int *queue;
        size_t q_head, q_len, q_cap;
        unsigned n_closers;
        unsigned n_ready; /* closers past their own set-up */
        pthread_cond_t ready;
} S = {
        .ready = PTHREAD_COND_INITIALIZER,
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
};

/* ---- closer threads ---- */

static int interrupt_signal(void) {
        return SIGRTMIN + 3;
}

static void on_interrupt(int sig) {
        /* Nothing: being delivered is the point (it ends a lingering close's wait). */
}

static void *closer_main(void *arg) {
        struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = interrupt_signal() };
        struct itimerspec arm = { .it_value = { .tv_nsec = BUS_FDS_CLOSE_INTERRUPT_USEC * 1000 } }, disarm = {};
        timer_t timer;
        bool have_timer;
        sigset_t ss;

        sigemptyset(&ss);
        sigaddset(&ss, interrupt_signal());
        (void) pthread_sigmask(SIG_UNBLOCK, &ss, NULL);
        sev.sigev_notify_thread_id = (pid_t) syscall(SYS_gettid);
        have_timer = timer_create(CLOCK_MONOTONIC, &sev, &timer) >= 0;
        /* Set-up done: its calls (rt_sigprocmask, timer_create) are not in the system call
         * filter, which must not be applied before this point. */
        pthread_mutex_lock(&S.lock);
        S.n_ready++;
        pthread_cond_broadcast(&S.ready);
        pthread_mutex_unlock(&S.lock);

        for (;;) {
                int fd;

                pthread_mutex_lock(&S.lock);
                while (S.q_len == 0)
                        pthread_cond_wait(&S.wake, &S.lock);
                fd = S.queue[S.q_head];
                S.q_head = (S.q_head + 1) % S.q_cap;
                S.q_len--;
                pthread_mutex_unlock(&S.lock);

                if (have_timer)
                        (void) timer_settime(timer, 0, &arm, NULL);
                (void) close(fd); /* whatever it returns, the descriptor is gone */
                if (have_timer)
                        (void) timer_settime(timer, 0, &disarm, NULL);
        }
        return NULL;
}

void bus_fds_close_async(int fd) {
        if (fd < 0)
                return;
        pthread_mutex_lock(&S.lock);
        if (S.n_closers == 0)
                goto sync;
        if (S.q_len == S.q_cap) {
                /* Grows with the descriptors it holds: the process's limit bounds it. */
                size_t cap = S.q_cap ? S.q_cap * 2 : 64;
                int *q = malloc(cap * sizeof(int));
                if (!q)
                        goto sync;
                for (size_t i = 0; i < S.q_len; i++)
                        q[i] = S.queue[(S.q_head + i) % S.q_cap];
                free(S.queue);
                S.queue = q;
                S.q_head = 0;
                S.q_cap = cap;
        }
        S.queue[(S.q_head + S.q_len) % S.q_cap] = fd;
        S.q_len++;
        pthread_cond_signal(&S.wake);
        pthread_mutex_unlock(&S.lock);
        return;
sync:
        pthread_mutex_unlock(&S.lock);
        safe_close(fd);
}

/* ---- watching the messages' descriptors ---- */

static bool same_file(int a, int b) {
        pid_t pid = getpid();
        return syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0;
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata);

static void sweep_arm(void) {
        if (S.n_watch == 0 || !S.sweep)
                return;
        if (sd_event_source_set_time_relative(S.sweep, WATCH_SWEEP_USEC) >= 0)
                (void) sd_event_source_set_enabled(S.sweep, SD_EVENT_ONESHOT);
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        size_t i = 0;

        while (i < S.n_watch) {
                if (now - S.watch[i].since < WATCH_GRACE_USEC || same_file(S.watch[i].slot, S.watch[i].dup)) {
                        i++;
                        continue;
                }
                /* The message's descriptor is closed (its slot is empty or holds another file):
                 * ours is the last of the supervisor's. */
                bus_fds_close_async(S.watch[i].dup);
                S.watch[i] = S.watch[--S.n_watch];
        }
        if (S.n_watch < BUS_FDS_WATCH_MAX / 2)
                S.warned = false;
        sweep_arm();
        return 0;
}

static void watch_add(int slot) {
        int dup;

        for (size_t i = 0; i < S.n_watch; i++)
                if (S.watch[i].slot == slot && same_file(slot, S.watch[i].dup))
                        return; /* the same descriptor again */
        if (S.n_watch >= BUS_FDS_WATCH_MAX) {
                if (!S.warned)
                        log_warning("More than %u caller descriptors in flight: not all are closed off the loop.",
                                    BUS_FDS_WATCH_MAX);
                S.warned = true;
                return;
        }
        dup = fcntl(slot, F_DUPFD_CLOEXEC, 3);
        if (dup < 0)
                return; /* out of descriptors: nothing can be done here */
        S.watch[S.n_watch++] = (Watch) { .slot = slot, .dup = dup, .since = now_usec(CLOCK_MONOTONIC) };
}

/* Finds every 'h' in the rest of the current container. Returns the number of values
 * still allowed, or negative on error. */
static int walk(sd_bus_message *m, unsigned depth, int budget) {
        for (;;) {
                const char *contents;
                char type;
                int r;

                if (budget <= 0)
                        return 0;
                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r <= 0)
                        return r < 0 ? r : budget;
                if (type == SD_BUS_TYPE_UNIX_FD) {
                        int fd;

                        r = sd_bus_message_read_basic(m, type, &fd);
                        if (r < 0)
                                return r;
                        watch_add(fd);
                        budget--;
                } else if (IN_SET(type, SD_BUS_TYPE_ARRAY, SD_BUS_TYPE_STRUCT, SD_BUS_TYPE_DICT_ENTRY, SD_BUS_TYPE_VARIANT)) {
                        if (!strchr(contents, SD_BUS_TYPE_UNIX_FD)) {
                                /* Nothing to find inside: skip it whole. */
                                char sig[256];
                                int k = type == SD_BUS_TYPE_VARIANT ? snprintf(sig, sizeof sig, "v")
                                        : type == SD_BUS_TYPE_ARRAY ? snprintf(sig, sizeof sig, "a%s", contents)
                                        : type == SD_BUS_TYPE_STRUCT ? snprintf(sig, sizeof sig, "(%s)", contents)
                                                                     : snprintf(sig, sizeof sig, "{%s}", contents);
                                if (k < 0 || (size_t) k >= sizeof sig)
                                        return -EBADMSG;
                                r = sd_bus_message_skip(m, sig);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (depth >= WALK_DEPTH_MAX)
                                return -EBADMSG;
                        r = sd_bus_message_enter_container(m, type, contents);
                        if (r < 0)
                                return r;
                        budget = walk(m, depth + 1, budget);
                        if (budget < 0)
                                return budget;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                } else {
                        char sig[2] = { type, 0 };
                        r = sd_bus_message_skip(m, sig);
                        if (r < 0)
                                return r;
                }
        }
}

bool bus_message_has_fds(sd_bus_message *m) {
        const char *sig = sd_bus_message_get_signature(m, true);
        return sig && strchr(sig, SD_BUS_TYPE_UNIX_FD);
}

/* Runs for every incoming message before any handler (and before anything can hold it). */
static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        size_t before = S.n_watch;
        int r;

        if (!bus_message_has_fds(m))
                return 0;
        r = sd_bus_message_rewind(m, true);
        if (r >= 0)
                r = walk(m, 0, WATCH_PER_MESSAGE_MAX);
        (void) sd_bus_message_rewind(m, true);
        if (r < 0)
                log_debug_errno(r, "Cannot walk a message's descriptors: %m");
        if (S.n_watch > 0 && before == 0)
                sweep_arm();
        return 0;
}

int bus_fds_watch_bus(sd_bus *bus, sd_bus_slot **ret_slot) {
        return sd_bus_add_filter(bus, ret_slot, on_message, NULL);
}

size_t bus_fds_watched(void) {
        size_t n;

        pthread_mutex_lock(&S.lock);
        n = S.q_len;
        pthread_mutex_unlock(&S.lock);
        return S.n_watch + n;
}

int bus_fds_setup(sd_bus *bus) {
        struct sigaction sa = { .sa_handler = on_interrupt };
        sd_event *event = sd_bus_get_event(bus);
        sigset_t ss, old;
        int r;

        if (!event)
                return -EINVAL;
        /* The interrupt signal goes to one closer thread at a time (SIGEV_THREAD_ID); every
         * other thread keeps it blocked, as the loop's signals stay blocked in the closers. */
        sigemptyset(&sa.sa_mask);
        if (sigaction(interrupt_signal(), &sa, NULL) < 0)
                return -errno;
        sigemptyset(&ss);
        sigaddset(&ss, interrupt_signal());
        if (pthread_sigmask(SIG_BLOCK, &ss, &old) != 0)
                return -EINVAL;

        for (unsigned i = 0; i < BUS_FDS_CLOSERS; i++) {
                pthread_attr_t attr;
                pthread_t t;

                if (pthread_attr_init(&attr) != 0)
                        return -ENOMEM;
                (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                (void) pthread_attr_setstacksize(&attr, 256 * 1024);
                r = pthread_create(&t, &attr, closer_main, NULL);
                pthread_attr_destroy(&attr);
                if (r != 0)
                        return log_error_errno(r, "Failed to start a descriptor closer thread: %m");
                pthread_mutex_lock(&S.lock);
                S.n_closers++;
                pthread_mutex_unlock(&S.lock);
        }
        pthread_mutex_lock(&S.lock);
        while (S.n_ready < S.n_closers)
                pthread_cond_wait(&S.ready, &S.lock);
        pthread_mutex_unlock(&S.lock);

        r = sd_event_add_time_relative(event, &S.sweep, CLOCK_MONOTONIC, WATCH_SWEEP_USEC, 0, on_sweep, NULL);
        if (r >= 0)
                r = sd_event_source_set_enabled(S.sweep, SD_EVENT_OFF);
        if (r < 0)
                return r;
        return sd_bus_add_filter(bus, &S.filter, on_message, NULL);
}
