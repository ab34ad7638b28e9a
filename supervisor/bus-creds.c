/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-creds.h"
#include "bus-errors.h"
#include "list.h"
#include "log.h"

#define CREDS_BUCKETS 1024U

typedef struct CredsEntry {
        char *name;
        bool ready;
        uid_t uid;
        pid_t pid;
        gid_t *groups;
        size_t n_groups;
        bool kept;               /* outlives its messages: on an LRU list, watched */
        bool refused;            /* no right here: on the refused list, not the kept one */
        sd_bus_slot *call;       /* GetConnectionCredentials in flight */
        sd_bus_slot *gone_match; /* NameOwnerChanged for this name only; kept entries only */
        sd_bus_message **held;   /* messages waiting for this entry */
        size_t n_held;
        size_t n_requeued;       /* held messages back in sd-bus's read queue, not yet through the gate */
        struct CredsEntry *bucket_next;
        LIST_FIELDS(struct CredsEntry); /* on an LRU list when kept */
        CredsCache *cache;
} CredsEntry;

typedef struct CredsPeer {
        sd_bus *bus; /* not referenced: removed before the connection is freed */
        uid_t uid;
        pid_t pid;
        gid_t *groups;
        size_t n_groups;
        struct CredsPeer *next;
} CredsPeer;

struct CredsCache {
        sd_bus *bus;
        CredsPeer *peers; /* direct connections; a few dozen at most */
        creds_keep_t keep;
        void *userdata;
        CredsEntry *buckets[CREDS_BUCKETS];
        size_t n_entries;
        size_t n_held;
        /* Kept entries, most recently used first: callers with some right here, and callers
         * with none (their calls are refused), each list bounded on its own so that a flood
         * of refused callers never evicts one with rights. */
        LIST_HEAD(CredsEntry) lru;
        size_t n_kept;
        LIST_HEAD(CredsEntry) refused_lru;
        size_t n_refused;
        /* An entry that is not kept, out of the table, whose last call is being handled:
         * freed when the next call reaches the gate (handlers look the caller up only while
         * they run). */
        CredsEntry *retired;
};

static unsigned hash_name(const char *s) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 16777619u;
        return h % CREDS_BUCKETS;
}

static CredsEntry *entry_find(CredsCache *c, const char *name) {
        for (CredsEntry *e = c->buckets[hash_name(name)]; e; e = e->bucket_next)
                if (streq(e->name, name))
                        return e;
        return NULL;
}

static void lru_unlink(CredsCache *c, CredsEntry *e) {
        if (!e->kept)
                return;
        if (e->refused) {
                LIST_REMOVE(&c->refused_lru, e);
                c->n_refused--;
        } else {
                LIST_REMOVE(&c->lru, e);
                c->n_kept--;
        }
        e->kept = false;
}

static void lru_push_front(CredsCache *c, CredsEntry *e) {
        if (e->refused) {
                LIST_PREPEND(&c->refused_lru, e);
                c->n_refused++;
        } else {
                LIST_PREPEND(&c->lru, e);
                c->n_kept++;
        }
        e->kept = true;
}

static void entry_free(CredsEntry *e, bool answer_held) {
        if (e->cache)
                lru_unlink(e->cache, e);
        for (size_t i = 0; i < e->n_held; i++) {
                if (answer_held)
                        (void) sd_bus_reply_method_errorf(e->held[i], SD_BUS_ERROR_ACCESS_DENIED,
                                                          "The caller's credentials are not available.");
                sd_bus_message_unref(e->held[i]);
        }
        if (e->cache)
                e->cache->n_held -= e->n_held;
        sd_bus_slot_unref(e->call);
        sd_bus_slot_unref(e->gone_match);
        free(e->held);
        free(e->groups);
        free(e->name);
        free(e);
}

static void entry_remove(CredsCache *c, const char *name, bool answer_held) {
        CredsEntry **p = &c->buckets[hash_name(name)];

        for (; *p; p = &(*p)->bucket_next)
                if (streq((*p)->name, name)) {
                        CredsEntry *e = *p;
                        *p = e->bucket_next;
                        c->n_entries--;
                        entry_free(e, answer_held);
                        return;
                }
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        CredsEntry *e = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (streq(name, e->name) && new_owner[0] == '\0')
                entry_remove(e->cache, name, true);
        return 0;
}

static int parse_creds(CredsEntry *e, sd_bus_message *reply) {
        bool have_uid = false;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID")) {
                        uint32_t u;
                        r = sd_bus_message_read(reply, "v", "u", &u);
                        if (r < 0)
                                return r;
                        e->uid = u;
                        have_uid = true;
                } else if (streq(key, "ProcessID")) {
                        uint32_t p;
                        r = sd_bus_message_read(reply, "v", "u", &p);
                        if (r < 0)
                                return r;
                        e->pid = (pid_t) p;
                } else if (streq(key, "UnixGroupIDs")) {
                        const void *p;
                        size_t sz;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'u', &p, &sz);
                        if (r < 0)
                                return r;
                        sz /= sizeof(uint32_t);
                        if (sz > CREDS_GROUPS_MAX)
                                sz = CREDS_GROUPS_MAX;
                        free(e->groups);
                        e->groups = calloc(sz + 1, sizeof(gid_t));
                        if (!e->groups)
                                return -ENOMEM;
                        for (size_t i = 0; i < sz; i++)
                                e->groups[i] = ((const uint32_t *) p)[i];
                        e->n_groups = sz;
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                } else {
                        r = sd_bus_message_skip(reply, "v");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return have_uid ? 0 : -ENODATA;
}

static int on_match_installed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        CredsEntry *e = userdata;

        /* Without its match the entry could outlive its name unnoticed: drop it (the caller's
         * next call asks the bus again). sd-bus's default here would close the connection. */
        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("No departure match for %s: %s", e->name, sd_bus_message_get_error(reply)->message);
                entry_remove(e->cache, e->name, false);
        }
        return 0;
}

/* Keeps a ready entry for later calls, each with its own departure match, least recently
 * used evicted first: at most CREDS_KEPT_MAX callers with some right here and
 * CREDS_REFUSED_KEPT_MAX with none. Returns false when the entry is not kept. */
static bool entry_keep(CredsCache *c, CredsEntry *e) {
        Caller caller = {
                .uid = e->uid,
                .gid = (gid_t) -1,
                .groups = e->groups,
                .n_groups = e->n_groups,
        };
        char rule[256];

        /* A caller with no right keeps its credentials too: every call it makes is refused,
         * and without them each refusal would cost a GetConnectionCredentials round trip
         * through the bus daemon. The decision is still made per call against the
         * credentials, so a caller granted rights later is not refused for having been
         * remembered here. */
        e->refused = !c->keep || !c->keep(&caller, c->userdata);
        if (e->refused)
                while (c->n_refused >= CREDS_REFUSED_KEPT_MAX && c->refused_lru.tail)
                        entry_remove(c, c->refused_lru.tail->name, false);
        else
                while (c->n_kept >= CREDS_KEPT_MAX && c->lru.tail)
                        entry_remove(c, c->lru.tail->name, false);
        /* Only this caller's departure: a bus-wide match would wake every supervisor for every
         * connection on the bus. A caller gone before the match is installed leaves a stale entry
         * behind, harmless (unique names are never reused) and evicted in its turn. */
        snprintf(rule, sizeof rule,
                 "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                 "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s',arg2=''", e->name);
        if (sd_bus_add_match_async(c->bus, &e->gone_match, rule, on_name_owner_changed, on_match_installed, e) < 0)
                return false;
        lru_push_front(c, e);
        return true;
}

static int on_creds_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        CredsEntry *e = userdata;
        CredsCache *c = e->cache;
        _cleanup_free_ sd_bus_message **held = NULL;
        size_t n_held;
        int r;

        e->call = sd_bus_slot_unref(e->call);
        if (sd_bus_message_is_method_error(reply, NULL))
                r = -sd_bus_message_get_errno(reply) ?: -EIO;
        else
                r = parse_creds(e, reply);
        if (r < 0) {
                log_debug_errno(r, "Credentials of %s unavailable: %m", e->name);
                entry_remove(c, e->name, true);
                return 0;
        }
        e->ready = true;

        /* What waited goes back to sd-bus, in the order it came: the read queue is dispatched
         * first in, first out, before anything read from the socket after. */
        held = TAKE_PTR(e->held);
        n_held = e->n_held;
        e->n_held = 0;
        c->n_held -= n_held;
        for (size_t i = 0; i < n_held; i++) {
                r = sd_bus_message_rewind(held[i], true);
                if (r >= 0)
                        r = sd_bus_enqueue_for_read(c->bus, held[i]);
                if (r >= 0)
                        e->n_requeued++;
                else {
                        log_debug_errno(r, "Cannot dispatch a call of %s again: %m", e->name);
                        (void) sd_bus_reply_method_errno(held[i], r, NULL);
                }
                sd_bus_message_unref(held[i]);
        }
        /* An entry that cannot be kept (no match rule) is not remembered: it lives until the
         * calls that waited for it have been handled (creds_cache_gate() retires it). */
        if (!entry_keep(c, e) && e->n_requeued == 0)
                entry_remove(c, e->name, false);
        return 0;
}

/* Takes e out of the table; it stays readable as c->retired until the next call. */
static void entry_retire(CredsCache *c, CredsEntry *e) {
        CredsEntry **p = &c->buckets[hash_name(e->name)];

        for (; *p; p = &(*p)->bucket_next)
                if (*p == e) {
                        *p = e->bucket_next;
                        c->n_entries--;
                        break;
                }
        if (c->retired)
                entry_free(c->retired, false);
        c->retired = e;
}

static CredsPeer *peer_find(CredsCache *c, sd_bus *bus) {
        for (CredsPeer *p = c->peers; p; p = p->next)
                if (p->bus == bus)
                        return p;
        return NULL;
}

int creds_cache_add_peer(CredsCache *c, sd_bus *bus, const Caller *caller) {
        CredsPeer *p;
        size_t n = caller->n_groups < CREDS_GROUPS_MAX ? caller->n_groups : CREDS_GROUPS_MAX;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->groups = calloc(n + 1, sizeof(gid_t));
        if (!p->groups) {
                free(p);
                return -ENOMEM;
        }
        if (n > 0)
                memcpy(p->groups, caller->groups, n * sizeof(gid_t));
        p->n_groups = n;
        p->uid = caller->uid;
        p->pid = caller->pid;
        p->bus = bus;
        p->next = c->peers;
        c->peers = p;
        return 0;
}

void creds_cache_remove_peer(CredsCache *c, sd_bus *bus) {
        for (CredsPeer **pp = &c->peers; *pp; pp = &(*pp)->next)
                if ((*pp)->bus == bus) {
                        CredsPeer *p = *pp;
                        *pp = p->next;
                        free(p->groups);
                        free(p);
                        return;
                }
}

int creds_cache_gate(CredsCache *c, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);
        CredsEntry *e;
        sd_bus_message **nh;
        int r;

        if (c->retired) { /* the call it was kept for has been handled */
                entry_free(c->retired, false);
                c->retired = NULL;
        }
        if (!sender) /* peer-to-peer: the caller is the connection's peer, or nobody */
                return peer_find(c, sd_bus_message_get_bus(m)) ? 0 : -EPERM;
        e = entry_find(c, sender);
        if (e && e->ready) {
                if (e->kept && c->lru.head != e && c->refused_lru.head != e) {
                        lru_unlink(c, e);
                        lru_push_front(c, e);
                } else if (!e->kept && e->n_requeued > 0 && --e->n_requeued == 0)
                        /* The last call that waited for a caller not kept: forget the caller
                         * once this call has been handled. */
                        entry_retire(c, e);
                return 0;
        }
        if (c->n_held >= CREDS_PENDING_MAX || (e && e->n_held >= CREDS_PENDING_PER_SENDER_MAX)) {
                (void) sd_bus_reply_method_errorf(m, VMSUP_ERROR_BUSY, "Too many calls waiting, try again.");
                return 1;
        }
        if (!e) {
                if (c->n_entries >= CREDS_CACHE_MAX) {
                        (void) sd_bus_reply_method_errorf(m, VMSUP_ERROR_BUSY, "Too many callers, try again.");
                        return 1;
                }
                e = calloc(1, sizeof *e);
                if (!e)
                        return -ENOMEM;
                e->name = strdup(sender);
                if (!e->name) {
                        free(e);
                        return -ENOMEM;
                }
                /* No match rule yet: a caller gone before the answer makes the query fail. */
                r = sd_bus_call_method_async(c->bus, &e->call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetConnectionCredentials", on_creds_reply, e,
                                             "s", sender);
                if (r < 0) {
                        free(e->name);
                        free(e);
                        return r;
                }
                e->cache = c;
                unsigned b = hash_name(sender);
                e->bucket_next = c->buckets[b];
                c->buckets[b] = e;
                c->n_entries++;
        }
        nh = realloc(e->held, sizeof(sd_bus_message *) * (e->n_held + 1));
        if (!nh)
                return -ENOMEM;
        e->held = nh;
        e->held[e->n_held++] = sd_bus_message_ref(m);
        c->n_held++;
        return 1;
}

int creds_cache_lookup(CredsCache *c, sd_bus_message *m, Caller *ret) {
        const char *sender = sd_bus_message_get_sender(m);
        CredsEntry *e;

        if (!sender) {
                CredsPeer *p = peer_find(c, sd_bus_message_get_bus(m));

                if (!p)
                        return -ENOENT;
                *ret = (Caller) {
                        .uid = p->uid,
                        .gid = (gid_t) -1, /* the groups hold the primary group too */
                        .groups = p->groups,
                        .n_groups = p->n_groups,
                        .pid = p->pid,
                };
                return 0;
        }
        e = entry_find(c, sender);
        if (!e && c->retired && streq(c->retired->name, sender))
                e = c->retired;
        if (!e || !e->ready)
                return -ENOENT;
        *ret = (Caller) {
                .uid = e->uid,
                .gid = (gid_t) -1, /* UnixGroupIDs holds the primary group too */
                .groups = e->groups,
                .n_groups = e->n_groups,
                .pid = e->pid,
        };
        return 0;
}

size_t creds_cache_size(CredsCache *c) {
        return c->n_entries;
}

size_t creds_cache_kept(CredsCache *c, size_t *ret_refused) {
        if (ret_refused)
                *ret_refused = c->n_refused;
        return c->n_kept;
}

int creds_cache_new(sd_bus *bus, creds_keep_t keep, void *userdata, CredsCache **ret) {
        CredsCache *c;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->bus = sd_bus_ref(bus);
        c->keep = keep;
        c->userdata = userdata;
        *ret = c;
        return 0;
}

CredsCache *creds_cache_free(CredsCache *c) {
        if (!c)
                return NULL;
        for (size_t b = 0; b < CREDS_BUCKETS; b++)
                while (c->buckets[b]) {
                        CredsEntry *e = c->buckets[b];
                        c->buckets[b] = e->bucket_next;
                        entry_free(e, false);
                }
        if (c->retired)
                entry_free(c->retired, false);
        while (c->peers)
                creds_cache_remove_peer(c, c->peers->bus);
        sd_bus_unref(c->bus);
        free(c);
        return NULL;
}
