/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-dbus.h"
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
        } interfaces[ELEMENTSOF(bus_interfaces)];
};

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

/* Callers with no right here are not remembered between calls. */
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
                return bus_require(&o->base, m, PRIV_VM_AUDIT, error);
        }
        return 0; /* on to the vtable, whose handler authorizes the call */
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
                r = sd_bus_add_object_vtable(bus, &o->interfaces[i].slot, VM_OBJECT_PATH, bi->name, bi->vtable,
                                             userdata);
                if (r < 0)
                        return r;
        }
        vm_set_bus(vm, bus);
        vm->events = o->events;
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
        }
        o->object_slot = sd_bus_slot_unref(o->object_slot);
        vm_events_free(o->events);
        creds_cache_free(o->base.creds);
        bus_quota_free(o->base.quota);
        sd_bus_unref(o->base.bus);
        free(o);
        return NULL;
}
