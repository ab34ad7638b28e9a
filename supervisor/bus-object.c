/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-dbus.h"
#include "bus-audit.h"
#include "bus-fds.h"
#include "bus-object.h"
#include "bus-util.h"
#include "console-dbus.h"
#include "migration-dbus.h"
#include "monitor-dbus.h"
#include "vm-dbus.h"
#include "vm-events.h"

/* Every interface of the VM object. A new interface is a file of its own with its
 * vtable and handlers, and one line here. */
static const BusInterface * const bus_interfaces[] = {
        &vm_bus_interface,
        &monitor_bus_interface,
        &agent_bus_interface,
        &console_bus_interface,
        &migration_bus_interface,
};

struct BusObject {
        VmBus base;
        VmEvents *events;
        sd_bus_slot *object_slot;
        struct {
                sd_bus_slot *slot;
                void *state;
                sd_bus_vtable *vtable; /* the interface's, each method through audited_method() */
        } interfaces[ELEMENTSOF(bus_interfaces)];
};

/* The one object of the process, for the method trampoline. */
static BusObject *audit_object = NULL;

static sd_bus_message_handler_t original_handler(const char *iface, const char *member) {
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++) {
                if (!streq(bus_interfaces[i]->name, iface))
                        continue;
                for (const sd_bus_vtable *v = bus_interfaces[i]->vtable + 1; v->type != _SD_BUS_VTABLE_END; v++)
                        if (v->type == _SD_BUS_VTABLE_METHOD && streq(v->x.method.member, member))
                                return v->x.method.handler;
        }
        return NULL;
}

/* Every method of every interface runs through here (bus-audit.h): the handler, then the
 * audit record of a refusal (AccessDenied) or of a state-changing call. */
static int audited_method(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *iface = sd_bus_message_get_interface(m) ?: "", *member = sd_bus_message_get_member(m) ?: "";
        sd_bus_message_handler_t handler = original_handler(iface, member);
        char command[VMSUP_AUDIT_COMMAND_MAX + 1] = "";
        bool hmp = streq(iface, "org.vmsup.Monitor1") && streq(member, "HumanCommand");
        Caller caller = {};
        int r;

        if (!handler)
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method.");
        /* Only the command's name, before the handler reads the message. */
        if (hmp || (streq(iface, "org.vmsup.Monitor1") && streq(member, "Execute")) ||
            (streq(iface, "org.vmsup.Agent1") && streq(member, "Command"))) {
                const char *text = NULL;
                if (sd_bus_message_read(m, "s", &text) >= 0)
                        bus_audit_command_name(text, hmp, command);
                r = sd_bus_message_rewind(m, true);
                if (r < 0)
                        return r;
        }
        /* The caller before the handler runs: a held caller's entry may be retired by then. */
        if (audit_object)
                (void) creds_cache_lookup(audit_object->base.creds, m, &caller);
        r = handler(m, userdata, error);
        if (!audit_object)
                return r;
        if (r < 0 && sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED))
                bus_audit_record(true, audit_object->base.vm->config->name, &caller, iface, member, command,
                                 error->name);
        else if (bus_audit_is_state_changing(iface, member))
                bus_audit_record(false, audit_object->base.vm->config->name, &caller, iface, member, command,
                                 r >= 0 ? "accepted" : sd_bus_error_is_set(error) ? error->name : "failed");
        return r;
}

/* A copy of vt whose methods go through audited_method(). */
static sd_bus_vtable *vtable_audited(const sd_bus_vtable *vt) {
        size_t n = 1;
        sd_bus_vtable *copy;

        while (vt[n - 1].type != _SD_BUS_VTABLE_END)
                n++;
        copy = calloc(n, sizeof *copy);
        if (!copy)
                return NULL;
        memcpy(copy, vt, n * sizeof *copy);
        for (size_t i = 0; i < n; i++)
                if (copy[i].type == _SD_BUS_VTABLE_METHOD)
                        copy[i].x.method.handler = audited_method;
        return copy;
}

static bool is_open_interface(const char *iface) {
        return streq(iface, "org.freedesktop.DBus.Introspectable") || streq(iface, "org.freedesktop.DBus.Peer");
}

/* Whether iface.member takes descriptors, from the vtables of the listed interfaces
 * (Properties, Introspectable, Peer and unknown methods take none). */
static bool method_takes_fds(const char *iface, const char *member) {
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++) {
                if (!streq(bus_interfaces[i]->name, iface))
                        continue;
                for (const sd_bus_vtable *v = bus_interfaces[i]->vtable + 1; v->type != _SD_BUS_VTABLE_END; v++)
                        if (v->type == _SD_BUS_VTABLE_METHOD && streq(v->x.method.member, member))
                                return v->x.method.signature && strchr(v->x.method.signature, SD_BUS_TYPE_UNIX_FD);
        }
        return false;
}

/* Which of the credentials cache's two lists a caller goes to: those with no right here
 * are bounded apart, so that they never evict a caller with rights. */
static bool caller_has_rights(const Caller *caller, void *userdata) {
        VmBus *b = userdata;

        return caller_is_root(caller) ||
               policy_acl_privileges(b->vm->config->acl, b->vm->config->n_acl, caller) != 0 ||
               policy_acl_privileges(b->vm->host_acl, b->vm->n_host_acl, caller) != 0;
}

/* Runs before the vtables, for every message to the object, and again for a call that
 * waited for its sender's credentials (bus-creds.c puts it back in the read queue). */
static int on_object_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusObject *o = userdata;
        const char *iface;
        int r;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        iface = sd_bus_message_get_interface(m);
        /* Descriptors only where the method takes them, refused before the call is held (the
         * filter in bus-fds.c has taken its copies: they are closed off the loop either way). */
        if (bus_message_has_fds(m) && (!iface || !method_takes_fds(iface, sd_bus_message_get_member(m) ?: "")))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "This method takes no file descriptors.");
        if (!iface || is_open_interface(iface))
                return 0;
        r = creds_cache_gate(o->base.creds, m);
        if (r != 0)
                return r; /* held (1), or an error reply */
        if (streq(iface, "org.freedesktop.DBus.Properties")) {
                /* Every property is read-only: Set says so to anyone, as it always did. */
                if (sd_bus_message_is_method_call(m, NULL, "Set"))
                        return sd_bus_error_set(error, SD_BUS_ERROR_PROPERTY_READ_ONLY,
                                                "All properties are read-only.");
                /* Property values are authorized like methods; sd-bus then answers
                 * Get and GetAll from the vtables. */
                r = bus_require(&o->base, m, PRIV_VM_AUDIT, error);
                if (r < 0) {
                        Caller caller = {};
                        (void) creds_cache_lookup(o->base.creds, m, &caller);
                        bus_audit_record(true, o->base.vm->config->name, &caller, iface,
                                         sd_bus_message_get_member(m) ?: "", NULL, error->name);
                }
                return r;
        }
        return 0; /* on to the vtable, whose handler authorizes the call */
}

struct BusPeer {
        BusObject *object;
        sd_bus *bus;
        sd_bus_slot *fds_filter;
        sd_bus_slot *object_slot;
        sd_bus_slot *slots[ELEMENTSOF(bus_interfaces)];
};

static void *interface_userdata(BusObject *o, size_t i) {
        return bus_interfaces[i]->state_new ? o->interfaces[i].state : (void *) &o->base;
}

int bus_object_add_peer(BusObject *o, sd_bus *bus, const Caller *caller, BusPeer **ret) {
        _cleanup_(bus_peer_freep) BusPeer *p = NULL;
        int r;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->object = o;
        p->bus = sd_bus_ref(bus);
        r = creds_cache_add_peer(o->base.creds, bus, caller);
        if (r < 0) {
                p->object = NULL; /* nothing to remove */
                return r;
        }
        r = bus_fds_watch_bus(bus, &p->fds_filter);
        if (r < 0)
                return r;
        r = sd_bus_add_object(bus, &p->object_slot, VM_OBJECT_PATH, on_object_message, o);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++) {
                r = sd_bus_add_object_vtable(bus, &p->slots[i], VM_OBJECT_PATH, bus_interfaces[i]->name,
                                             bus_interfaces[i]->vtable, interface_userdata(o, i));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

BusPeer *bus_peer_free(BusPeer *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++)
                sd_bus_slot_unref(p->slots[i]);
        sd_bus_slot_unref(p->object_slot);
        sd_bus_slot_unref(p->fds_filter);
        if (p->object) {
                if (p->object->events)
                        (void) vm_events_unsubscribe_peer(p->object->events, p->bus);
                creds_cache_remove_peer(p->object->base.creds, p->bus);
        }
        sd_bus_unref(p->bus);
        free(p);
        return NULL;
}

int bus_object_new(Vm *vm, sd_bus *bus, BusObject **ret) {
        _cleanup_(bus_object_freep) BusObject *o = NULL;
        int r;

        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->base.vm = vm;
        o->base.bus = sd_bus_ref(bus);
        r = creds_cache_new(bus, caller_has_rights, &o->base, &o->base.creds);
        if (r < 0)
                return r;
        r = bus_quota_new(&o->base.quota);
        if (r < 0)
                return r;
        r = vm_events_new(bus, vm_bus_may_audit, &o->base, &o->events);
        if (r < 0)
                return r;
        r = sd_bus_add_object(bus, &o->object_slot, VM_OBJECT_PATH, on_object_message, o);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++) {
                const BusInterface *bi = bus_interfaces[i];
                void *userdata = &o->base;

                if (bi->state_new) {
                        r = bi->state_new(&o->base, &o->interfaces[i].state);
                        if (r < 0)
                                return r;
                        userdata = o->interfaces[i].state;
                }
                o->interfaces[i].vtable = vtable_audited(bi->vtable);
                if (!o->interfaces[i].vtable)
                        return -ENOMEM;
                r = sd_bus_add_object_vtable(bus, &o->interfaces[i].slot, VM_OBJECT_PATH, bi->name,
                                             o->interfaces[i].vtable, userdata);
                if (r < 0)
                        return r;
        }
        vm_set_bus(vm, bus);
        vm->events = o->events;
        audit_object = o;
        *ret = TAKE_PTR(o);
        return 0;
}

BusObject *bus_object_free(BusObject *o) {
        if (!o)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(bus_interfaces); i++) {
                o->interfaces[i].slot = sd_bus_slot_unref(o->interfaces[i].slot);
                if (bus_interfaces[i]->state_free)
                        bus_interfaces[i]->state_free(o->interfaces[i].state);
                free(o->interfaces[i].vtable);
        }
        if (audit_object == o)
                audit_object = NULL;
        o->object_slot = sd_bus_slot_unref(o->object_slot);
        vm_events_free(o->events);
        creds_cache_free(o->base.creds);
        bus_quota_free(o->base.quota);
        sd_bus_unref(o->base.bus);
        free(o);
        return NULL;
}
