/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Registration with systemd-machined (see machined.h). */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "machined.h"
#include "macro.h"

static sd_bus_slot *pending = NULL;
static pid_t registered = 0;
static char machine_name[128];

static const char * const allowed_devices[] = { "/dev/kvm", "/dev/net/tun", "/dev/vhost-net" };

/* The scope's properties: the unit's device policy follows QEMU into its scope. */
static int append_scope_properties(sd_bus_message *m, const char *name, pid_t pid, bool with_pids) {
        char desc[160];
        int r;

        (void) snprintf(desc, sizeof desc, "vmsup VM %s", name);
        r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r < 0)
                return r;
        if (with_pids) {
                r = sd_bus_message_append(m, "(sv)", "PIDs", "au", 1, (uint32_t) pid);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(m, "(sv)", "Slice", "s", "machine.slice");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_append(m, "(sv)", "Description", "s", desc);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)", "CollectMode", "s", "inactive-or-failed");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)", "DevicePolicy", "s", "closed");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'r', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "DeviceAllow");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "a(ss)");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(allowed_devices); i++)
                r = sd_bus_message_append(m, "(ss)", allowed_devices[i], "rw");
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static bool no_such_service(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_OBJECT,
                                      SD_BUS_ERROR_UNKNOWN_INTERFACE);
}

static int on_scope_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        pending = sd_bus_slot_unref(pending);
        if (!e)
                log_info("VM %s: QEMU (pid %d) moved to the transient scope vmsup-%s.scope in machine.slice.",
                         machine_name, (int) registered, machine_name);
        else if (no_such_service(e))
                log_debug("VM %s: no systemd on this bus, QEMU stays where it is (%s).", machine_name, e->name);
        else
                log_warning("VM %s: cannot create a scope for QEMU (pid %d), it stays in the service's cgroup: %s: %s",
                            machine_name, (int) registered, e->name, e->message ?: "");
        return 0;
}

static void start_transient_scope(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char unit[160];
        int r;

        (void) snprintf(unit, sizeof unit, "vmsup-%s.scope", machine_name);
        r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                           "org.freedesktop.systemd1.Manager", "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", unit, "fail");
        if (r >= 0)
                r = append_scope_properties(m, machine_name, registered, true);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r >= 0)
                r = sd_bus_call_async(bus, &pending, m, on_scope_reply, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot ask systemd for a scope: %m", machine_name);
}

static int on_machine_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        sd_bus *bus = sd_bus_message_get_bus(reply);

        pending = sd_bus_slot_unref(pending);
        if (!e) {
                log_info("VM %s: registered with systemd-machined (machine-%s.scope, leader %d).", machine_name,
                         machine_name, (int) registered);
                return 0;
        }
        if (sd_bus_error_has_name(e, "org.freedesktop.machine1.MachineExists")) {
                log_info("VM %s: already registered with systemd-machined.", machine_name);
                return 0;
        }
        if (no_such_service(e)) {
                log_debug("VM %s: no systemd-machined (%s), trying a transient scope.", machine_name, e->name);
                start_transient_scope(bus);
                return 0;
        }
        log_warning("VM %s: systemd-machined refused to register QEMU (pid %d): %s: %s", machine_name,
                    (int) registered, e->name, e->message ?: "");
        return 0;
}

void machined_register(sd_bus *bus, const char *name, pid_t pid) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        static const uint8_t no_id[16] = {};
        int r;

        if (!bus || pid <= 0 || pid == registered)
                return;
        registered = pid;
        (void) snprintf(machine_name, sizeof machine_name, "%s", name);
        pending = sd_bus_slot_unref(pending);
        r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.machine1", "/org/freedesktop/machine1",
                                           "org.freedesktop.machine1.Manager", "CreateMachine");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', no_id, sizeof no_id);
        if (r >= 0)
                r = sd_bus_message_append(m, "ssus", "vmsup", "vm", (uint32_t) pid, "");
        if (r >= 0)
                r = append_scope_properties(m, name, pid, false);
        if (r >= 0)
                r = sd_bus_call_async(bus, &pending, m, on_machine_reply, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "VM %s: cannot ask systemd-machined to register QEMU: %m", name);
}

void machined_forget(void) {
        pending = sd_bus_slot_unref(pending);
}
