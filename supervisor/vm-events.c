/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "bus-direct.h"
#include "log.h"
#include "vm-events.h"

typedef struct VmEventRecord {
        uint64_t seq;
        uint64_t timestamp_usec;
        char *name;
        char *data;
        size_t size; /* of name and data, counted against VM_EVENTS_RING_BYTES */
} VmEventRecord;

typedef struct Subscriber {
        VmEvents *events;
        char *name;
        uid_t uid;
        gid_t *groups;
        size_t n_groups;
        sd_bus_slot *gone_match; /* NameOwnerChanged for this name only */
        sd_bus_slot *owner_call; /* GetNameOwner: still there once the match is in place? */
        sd_bus *peer;            /* a direct connection (name is NULL): signals go to it alone */
} Subscriber;

struct VmEvents {
        sd_bus *bus;
        vm_events_allowed_t allowed;
        void *userdata;

        VmEventRecord ring[VM_EVENTS_RING_MAX];
        size_t first; /* index of the oldest */
        size_t n;
        size_t bytes;
        uint64_t last_seq;

        Subscriber *subscribers[VM_EVENTS_SUBSCRIBERS_MAX];
        size_t n_subscribers;

        /* The Event signals' token bucket. */
        uint64_t tokens_milli; /* thousandths of a signal */
        uint64_t refilled_usec;
        uint64_t dropped, last_dropped;
};

static void record_clear(VmEventRecord *r) {
        free(r->name);
        free(r->data);
        *r = (VmEventRecord) {};
}

static void ring_drop_oldest(VmEvents *ev) {
        VmEventRecord *r = &ev->ring[ev->first];

        ev->bytes -= r->size;
        record_clear(r);
        ev->first = (ev->first + 1) % VM_EVENTS_RING_MAX;
        ev->n--;
}

uint64_t vm_events_last_seq(const VmEvents *ev) {
        return ev->last_seq;
}

int vm_events_record(VmEvents *ev, const char *name, const char *data_json, uint64_t timestamp_usec) {
        _cleanup_free_ char *n = strdup(name), *d = strdup(data_json);
        size_t size;
        VmEventRecord *r;

        if (!n || !d)
                return -ENOMEM;
        size = strlen(n) + strlen(d);
        /* The sequence goes on even when an event cannot be kept: a reader sees the gap. */
        ev->last_seq++;
        if (size > VM_EVENTS_RING_BYTES)
                return 0;
        while (ev->n > 0 && (ev->n >= VM_EVENTS_RING_MAX || ev->bytes + size > VM_EVENTS_RING_BYTES))
                ring_drop_oldest(ev);
        r = &ev->ring[(ev->first + ev->n) % VM_EVENTS_RING_MAX];
        *r = (VmEventRecord) {
                .seq = ev->last_seq,
                .timestamp_usec = timestamp_usec,
                .name = TAKE_PTR(n),
                .data = TAKE_PTR(d),
                .size = size,
        };
        ev->n++;
        ev->bytes += size;
        return 0;
}

int vm_events_append(VmEvents *ev, sd_bus_message *m, uint64_t since) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "(tsst)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ev->n; i++) {
                const VmEventRecord *e = &ev->ring[(ev->first + i) % VM_EVENTS_RING_MAX];

                if (e->seq <= since)
                        continue;
                r = sd_bus_message_append(m, "(tsst)", e->seq, e->name, e->data, e->timestamp_usec);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

bool vm_events_signal_budget(VmEvents *ev, uint64_t now_usec, uint64_t seq, uint64_t *ret_dropped,
                             uint64_t *ret_last_dropped) {
        const uint64_t cap = (uint64_t) VM_EVENTS_SIGNAL_BURST * 1000U;

        if (now_usec > ev->refilled_usec) {
                uint64_t add = (now_usec - ev->refilled_usec) * VM_EVENTS_SIGNAL_RATE / 1000U;
                ev->tokens_milli = add >= cap - ev->tokens_milli ? cap : ev->tokens_milli + add;
                ev->refilled_usec = now_usec;
        }
        if (ev->tokens_milli < 1000U) {
                ev->dropped++;
                ev->last_dropped = seq;
                return false;
        }
        ev->tokens_milli -= 1000U;
        *ret_dropped = ev->dropped;
        *ret_last_dropped = ev->last_dropped;
        ev->dropped = 0;
        return true;
}

/* ---- subscribers ---- */

static Subscriber *subscriber_free(Subscriber *s) {
        if (!s)
                return NULL;
        sd_bus_slot_unref(s->gone_match);
        sd_bus_slot_unref(s->owner_call);
        sd_bus_unref(s->peer);
        free(s->groups);
        free(s->name);
        free(s);
        return NULL;
}

static ssize_t subscriber_find(VmEvents *ev, const char *name) {
        for (size_t i = 0; i < ev->n_subscribers; i++)
                if (ev->subscribers[i]->name && streq(ev->subscribers[i]->name, name))
                        return (ssize_t) i;
        return -1;
}

static ssize_t subscriber_find_peer(VmEvents *ev, sd_bus *peer) {
        for (size_t i = 0; i < ev->n_subscribers; i++)
                if (ev->subscribers[i]->peer == peer)
                        return (ssize_t) i;
        return -1;
}

static Subscriber *subscriber_new(VmEvents *ev, const Caller *caller) {
        Subscriber *s = calloc(1, sizeof *s);

        if (!s)
                return NULL;
        s->events = ev;
        s->uid = caller->uid;
        s->groups = calloc(caller->n_groups + 1, sizeof(gid_t));
        if (!s->groups) {
                free(s);
                return NULL;
        }
        if (caller->n_groups > 0)
                memcpy(s->groups, caller->groups, caller->n_groups * sizeof(gid_t));
        s->n_groups = caller->n_groups;
        return s;
}

static void subscriber_remove(Subscriber *s) {
        VmEvents *ev = s->events;

        for (size_t i = 0; i < ev->n_subscribers; i++)
                if (ev->subscribers[i] == s) {
                        memmove(ev->subscribers + i, ev->subscribers + i + 1,
                                (ev->n_subscribers - i - 1) * sizeof(Subscriber *));
                        ev->n_subscribers--;
                        break;
                }
        subscriber_free(s);
}

size_t vm_events_subscribers(const VmEvents *ev) {
        return ev->n_subscribers;
}

static int on_subscriber_gone(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Subscriber *s = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (streq(name, s->name) && new_owner[0] == '\0') {
                log_debug("Subscriber %s gone", s->name);
                subscriber_remove(s);
        }
        return 0;
}

static int on_owner_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Subscriber *s = userdata;

        s->owner_call = sd_bus_slot_unref(s->owner_call);
        /* Gone before its departure match was in place: nothing would ever end it. */
        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("Subscriber %s left before it was watched", s->name);
                subscriber_remove(s);
        }
        return 0;
}

static int on_match_installed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Subscriber *s = userdata;
        int r;

        /* Unwatched, the subscription could outlive its connection: end it. sd-bus's default
         * here would close the supervisor's connection. */
        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("No departure match for subscriber %s: %s", s->name,
                          sd_bus_message_get_error(reply)->message);
                subscriber_remove(s);
                return 0;
        }
        r = sd_bus_call_method_async(s->events->bus, &s->owner_call, "org.freedesktop.DBus",
                                     "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                     on_owner_reply, s, "s", s->name);
        if (r < 0)
                subscriber_remove(s);
        return 0;
}

int vm_events_subscribe(VmEvents *ev, const char *name, const Caller *caller) {
        Subscriber *s;
        char rule[512];
        int r;

        if (subscriber_find(ev, name) >= 0)
                return 0;
        if (ev->n_subscribers >= VM_EVENTS_SUBSCRIBERS_MAX)
                return -EBUSY;
        if (strlen(name) > 200)
                return -EINVAL;
        s = subscriber_new(ev, caller);
        if (!s)
                return -ENOMEM;
        s->name = strdup(name);
        if (!s->name) {
                subscriber_free(s);
                return -ENOMEM;
        }
        snprintf(rule, sizeof rule,
                 "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                 "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s',arg2=''", name);
        r = sd_bus_add_match_async(ev->bus, &s->gone_match, rule, on_subscriber_gone, on_match_installed, s);
        if (r < 0) {
                subscriber_free(s);
                return r;
        }
        ev->subscribers[ev->n_subscribers++] = s;
        return 1;
}

int vm_events_subscribe_peer(VmEvents *ev, sd_bus *peer, const Caller *caller) {
        Subscriber *s;

        if (subscriber_find_peer(ev, peer) >= 0)
                return 0;
        if (ev->n_subscribers >= VM_EVENTS_SUBSCRIBERS_MAX)
                return -EBUSY;
        s = subscriber_new(ev, caller);
        if (!s)
                return -ENOMEM;
        /* No match: the connection's end is ours to see (vm_events_unsubscribe_peer()). */
        s->peer = sd_bus_ref(peer);
        ev->subscribers[ev->n_subscribers++] = s;
        return 1;
}

int vm_events_unsubscribe_peer(VmEvents *ev, sd_bus *peer) {
        ssize_t i = subscriber_find_peer(ev, peer);

        if (i < 0)
                return 0;
        subscriber_remove(ev->subscribers[i]);
        return 1;
}

int vm_events_unsubscribe(VmEvents *ev, const char *name) {
        ssize_t i = subscriber_find(ev, name);

        if (i < 0)
                return 0;
        subscriber_remove(ev->subscribers[i]);
        return 1;
}

void vm_events_send(VmEvents *ev, vm_events_build_t build, void *userdata) {
        for (size_t i = 0; i < ev->n_subscribers; i++) {
                Subscriber *s = ev->subscribers[i];
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                Caller caller = {
                        .uid = s->uid,
                        .gid = (gid_t) -1,
                        .groups = s->groups,
                        .n_groups = s->n_groups,
                };
                int r;

                if (ev->allowed && !ev->allowed(&caller, ev->userdata))
                        continue;
                if (s->peer) {
                        uint64_t queued = 0;

                        /* A direct connection: no bus daemon to route, the signal is written to
                         * that connection only. A subscriber that reads nothing does not make
                         * the queue grow past the bound its calls have: the signal is dropped
                         * (the ring still holds the event, for GetEvents). */
                        if (sd_bus_get_n_queued_write(s->peer, &queued) >= 0 && queued >= BUS_DIRECT_WQUEUE_MAX) {
                                log_debug("Direct subscriber reads nothing (%" PRIu64 " queued): signal dropped.", queued);
                                continue;
                        }
                        r = build(s->peer, &m, userdata);
                        if (r >= 0)
                                r = sd_bus_send(s->peer, m, NULL);
                        if (r < 0)
                                log_debug_errno(r, "Signal to a direct subscriber not sent: %m");
                        continue;
                }
                r = build(ev->bus, &m, userdata);
                if (r >= 0)
                        r = sd_bus_message_set_destination(m, s->name);
                if (r >= 0)
                        r = sd_bus_send(ev->bus, m, NULL);
                if (r < 0)
                        log_debug_errno(r, "Signal to subscriber %s not sent: %m", s->name);
        }
}

int vm_events_new(sd_bus *bus, vm_events_allowed_t allowed, void *userdata, VmEvents **ret) {
        VmEvents *ev;

        ev = calloc(1, sizeof *ev);
        if (!ev)
                return -ENOMEM;
        ev->bus = sd_bus_ref(bus);
        ev->tokens_milli = (uint64_t) VM_EVENTS_SIGNAL_BURST * 1000U;
        ev->allowed = allowed;
        ev->userdata = userdata;
        *ret = ev;
        return 0;
}

VmEvents *vm_events_free(VmEvents *ev) {
        if (!ev)
                return NULL;
        for (size_t i = 0; i < ev->n_subscribers; i++)
                subscriber_free(ev->subscribers[i]);
        while (ev->n > 0)
                ring_drop_oldest(ev);
        sd_bus_unref(ev->bus);
        free(ev);
        return NULL;
}
