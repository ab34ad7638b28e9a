/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Direct connections (bus-direct.h says what and why). */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "bus-direct.h"
#include "bus-util.h"
#include "list.h"
#include "log.h"

typedef struct DirectConn {
        BusDirect *direct;
        sd_bus *bus;
        uid_t uid;
        BusPeer *peer;
        sd_event_source *auth_timer;
        sd_event_source *started; /* until the handshake is over (on_started()) */
        sd_event_source *reap;   /* frees the connection once its own dispatch is over */
        sd_bus_slot *disconnected;
        sd_bus_slot *filter;
        LIST_FIELDS(struct DirectConn);
} DirectConn;

struct BusDirect {
        sd_event *event;
        BusObject *object;
        char *path;
        int fd;
        sd_event_source *io;
        sd_id128_t server_id;
        LIST_HEAD(DirectConn) conns;
        size_t n_conns, n_unprivileged;
};

static void conn_free(DirectConn *c) {
        BusDirect *d = c->direct;

        LIST_REMOVE(&d->conns, c);
        d->n_conns--;
        if (c->uid != 0)
                d->n_unprivileged--;
        sd_event_source_disable_unref(c->auth_timer);
        sd_event_source_disable_unref(c->started);
        sd_event_source_disable_unref(c->reap);
        sd_bus_slot_unref(c->disconnected);
        sd_bus_slot_unref(c->filter);
        bus_peer_free(c->peer);
        /* Calls in flight keep their messages, and so the connection: close it now, so that
         * their replies go nowhere and nothing more is read. */
        sd_bus_close(c->bus);
        sd_bus_unref(c->bus);
        free(c);
}

static int on_reap(sd_event_source *s, void *userdata) {
        conn_free(userdata);
        return 0;
}

/* Frees c on the next loop iteration: not from inside the connection's own dispatch. */
static void conn_end(DirectConn *c) {
        if (c->reap)
                return;
        if (sd_event_add_defer(c->direct->event, &c->reap, on_reap, c) < 0) {
                /* No memory for a deferred free: at least stop serving it. */
                c->peer = bus_peer_free(c->peer);
                sd_bus_close(c->bus);
        }
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        conn_end(userdata);
        return 0;
}

static int on_auth_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        DirectConn *c = userdata;

        c->auth_timer = sd_event_source_disable_unref(c->auth_timer);
        if (sd_bus_is_ready(c->bus) <= 0) {
                log_debug("Direct connection of uid %u: no handshake in time, closed.", (unsigned) c->uid);
                conn_end(c);
        }
        return 0;
}

/* A client may send its first call in the same write as the handshake's end (libdbus does):
 * sd-bus then holds it in its input buffer, and nothing on the socket says there is more to
 * do. After each loop iteration until the handshake is over, and once after: process what
 * was read. */
static int on_started(sd_event_source *s, void *userdata) {
        DirectConn *c = userdata;
        int r;

        if (sd_bus_is_ready(c->bus) <= 0)
                return 0;
        c->started = sd_event_source_disable_unref(c->started);
        c->auth_timer = sd_event_source_disable_unref(c->auth_timer);
        while ((r = sd_bus_process(c->bus, NULL)) > 0)
                if (c->reap)
                        break;
        if (r < 0)
                conn_end(c);
        return 0;
}

/* Runs before the object for every message read: a peer that lets its replies pile up is
 * cut off (the bus daemon would do so for the bus path). */
static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        DirectConn *c = userdata;
        uint64_t queued = 0;

        if (sd_bus_get_n_queued_write(c->bus, &queued) >= 0 && queued >= BUS_DIRECT_WQUEUE_MAX) {
                log_debug("Direct connection of uid %u reads none of its %" PRIu64 " replies, closed.",
                          (unsigned) c->uid, queued);
                conn_end(c);
                return 1; /* not dispatched */
        }
        return 0;
}

/* The peer's uid, pid and groups (its primary group first, as the bus daemon lists them). */
static int peer_caller(int fd, uid_t *ret_uid, pid_t *ret_pid, gid_t **ret_groups, size_t *ret_n) {
        struct ucred uc;
        socklen_t len = sizeof uc;
        _cleanup_free_ gid_t *groups = NULL;
        size_t n = 0;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return -errno;
        if (len != sizeof uc || uc.uid == (uid_t) -1)
                return -EIO;
        for (size_t cap = 32;; cap *= 2) {
                socklen_t sz = (socklen_t) (cap * sizeof(gid_t));
                gid_t *g = realloc(groups, (cap + 1) * sizeof(gid_t));

                if (!g)
                        return -ENOMEM;
                groups = g;
                groups[0] = uc.gid;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups + 1, &sz) >= 0) {
                        n = 1 + sz / sizeof(gid_t);
                        break;
                }
                if (errno != ERANGE || cap >= CREDS_GROUPS_MAX) {
                        n = 1; /* the primary group alone */
                        break;
                }
        }
        *ret_uid = uc.uid;
        *ret_pid = uc.pid;
        *ret_groups = TAKE_PTR(groups);
        *ret_n = n;
        return 0;
}

static size_t conns_of(BusDirect *d, uid_t uid) {
        size_t n = 0;
        DirectConn *c;

        LIST_FOREACH(c, &d->conns)
                if (c->uid == uid)
                        n++;
        return n;
}

static int conn_new(BusDirect *d, int fd) {
        _cleanup_close_ int owned = fd;
        _cleanup_free_ gid_t *groups = NULL;
        DirectConn *c;
        size_t n_groups = 0;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        int r;

        r = peer_caller(fd, &uid, &pid, &groups, &n_groups);
        if (r < 0)
                return log_debug_errno(r, "Direct connection without peer credentials, closed: %m");
        if (d->n_conns >= BUS_DIRECT_MAX ||
            (uid != 0 && (d->n_unprivileged >= BUS_DIRECT_MAX - BUS_DIRECT_ROOT_RESERVED ||
                          conns_of(d, uid) >= BUS_DIRECT_PER_UID_MAX))) {
                log_debug("Direct connection of uid %u refused: %zu connections already.", (unsigned) uid,
                          d->n_conns);
                return -EBUSY;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->direct = d;
        c->uid = uid;
        LIST_PREPEND(&d->conns, c);
        d->n_conns++;
        if (uid != 0)
                d->n_unprivileged++;

        r = sd_bus_new(&c->bus);
        if (r >= 0) {
                r = sd_bus_set_fd(c->bus, fd, fd);
                if (r >= 0)
                        owned = -EBADF; /* the connection's now */
        }
        if (r >= 0)
                r = sd_bus_set_server(c->bus, 1, d->server_id);
        if (r >= 0)
                r = sd_bus_negotiate_fds(c->bus, true);
        if (r >= 0)
                r = sd_bus_set_description(c->bus, "direct");
        if (r >= 0)
                r = sd_bus_add_filter(c->bus, &c->filter, on_message, c);
        if (r >= 0)
                r = sd_bus_match_signal(c->bus, &c->disconnected, "org.freedesktop.DBus.Local", NULL,
                                        "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, c);
        if (r >= 0)
                r = bus_object_add_peer(d->object, c->bus,
                                        &(Caller) { .uid = uid, .gid = (gid_t) -1, .groups = groups,
                                                    .n_groups = n_groups, .pid = pid },
                                        &c->peer);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, d->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_event_add_time_relative(d->event, &c->auth_timer, CLOCK_MONOTONIC,
                                               BUS_DIRECT_AUTH_TIMEOUT_USEC, 0, on_auth_timeout, c);
        if (r >= 0)
                r = sd_event_add_post(d->event, &c->started, on_started, c);
        if (r >= 0)
                r = sd_bus_start(c->bus);
        if (r < 0) {
                conn_free(c);
                return log_debug_errno(r, "Cannot serve a direct connection: %m");
        }
        log_debug("Direct connection of uid %u (%zu now).", (unsigned) uid, d->n_conns);
        return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        BusDirect *d = userdata;

        /* A few at a time: the loop has other work. */
        for (unsigned i = 0; i < 16; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (!IN_SET(errno, EAGAIN, EINTR, ECONNABORTED))
                                log_debug_errno(errno, "accept() on the direct socket: %m");
                        return 0;
                }
                (void) conn_new(d, cfd); /* closes cfd on failure */
        }
        return 0;
}

int bus_direct_new(sd_event *event, BusObject *object, const char *path, BusDirect **ret) {
        _cleanup_(bus_direct_freep) BusDirect *d = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path));
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->fd = -EBADF;
        d->event = sd_event_ref(event);
        d->object = object;
        r = sd_id128_randomize(&d->server_id);
        if (r < 0)
                return r;
        d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (d->fd < 0)
                return -errno;
        (void) unlink(path);
        if (bind(d->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return -errno;
        d->path = strdup(path); /* ours to remove from here on */
        if (!d->path)
                return -ENOMEM;
        /* The first fence is open: the ACLs decide (bus-direct.h). */
        if (chmod(path, 0666) < 0)
                return -errno;
        if (listen(d->fd, 64) < 0)
                return -errno;
        r = sd_event_add_io(event, &d->io, d->fd, EPOLLIN, on_listen, d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

BusDirect *bus_direct_free(BusDirect *d) {
        if (!d)
                return NULL;
        while (d->conns.head)
                conn_free(d->conns.head);
        sd_event_source_disable_unref(d->io);
        safe_close(d->fd);
        if (d->path)
                (void) unlink(d->path);
        free(d->path);
        sd_event_unref(d->event);
        free(d);
        return NULL;
}

size_t bus_direct_connections(const BusDirect *d) {
        return d->n_conns;
}
