/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.VM1 on /org/vmsup/VM: Start, StartWithOptions, Reboot, Shutdown, Stop, Reset, Pause, Resume,
 * SendKey, GetStatus, GetStats, Subscribe, Unsubscribe, GetEvents, Reload; the properties; StateChanged,
 * Event and PropertiesChanged, sent to subscribers only (vm-events.h). */

#include <fcntl.h>

#include "bus-errors.h"
#include "bus-util.h"
#include "policy.h"
#include "reload.h"
#include "vm-dbus.h"
#include "vm-stats.h"
#include "vm-events.h"
#include "vm.h"

/* Argument limits, checked before authorization. */
#define VM_SHUTDOWN_TIMEOUT_MAX_SEC 86400U
#define SENDKEY_MAX_KEYS 16U
#define SENDKEY_MAX_HOLD_MS 10000U
/* StartWithOptions: at most this many entries (each option at most once). */
#define START_OPTIONS_MAX 16U

/* ---- methods ---- */

/* What Start and StartWithOptions say when the start could not even be asked for; 1 when
 * it is under way (the answer comes when the VM runs). */
static int start_answer(Vm *vm, int r, sd_bus_error *error) {
        if (r == -EBUSY)
                return sd_bus_error_set(error, VMSUP_ERROR_ALREADY_RUNNING, "The VM is already running.");
        if (r == -EAGAIN)
                return sd_bus_error_set(error, VMSUP_ERROR_BUSY,
                                        "The QEMU launcher has not answered a reload, or took a definition the "
                                        "supervisor has not: start again once a reload succeeded.");
        if (r < 0)
                return sd_bus_error_setf(error, VMSUP_ERROR_QEMU_ERROR, "QEMU could not be started: %s.",
                                         vm->state_reason && *vm->state_reason ? vm->state_reason : strerror(-r));
        return 1;
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        Vm *vm = b->vm;
        int r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        if (vm_is_active(vm) && vm->state != VM_STARTING)
                return sd_bus_error_set(error, VMSUP_ERROR_ALREADY_RUNNING, "The VM is already running.");
        return start_answer(vm, vm_start(vm, m), error);
}

/* StartWithOptions(a{sv}): "paused" (b). Unknown options, wrong types, repeated
 * options and more than START_OPTIONS_MAX entries are InvalidArgs. */
static int method_start_with_options(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        Vm *vm = b->vm;
        bool have_paused = false;
        int paused = false;
        unsigned n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (++n > START_OPTIONS_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "At most %u options.",
                                                 START_OPTIONS_MAX);
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "paused")) {
                        if (have_paused)
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                        "The option \"paused\" is given twice.");
                        r = sd_bus_message_enter_container(m, 'v', "b");
                        if (r < 0)
                                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                        "The option \"paused\" is a boolean (b).");
                        r = sd_bus_message_read(m, "b", &paused);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                        have_paused = true;
                } else {
                        char safe[64];

                        text_sanitize(safe, sizeof safe, key, strlen(key), 0);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown start option \"%s\" (known: paused).", safe);
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        if (vm_is_active(vm) || vm_is_starting(vm))
                return sd_bus_error_set(error, VMSUP_ERROR_ALREADY_RUNNING, "The VM is already running.");
        return start_answer(vm, vm_start_with(vm, m, paused), error);
}

static int method_reboot(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t timeout;
        int r;

        r = sd_bus_message_read(m, "u", &timeout);
        if (r < 0)
                return r;
        if (timeout > VM_SHUTDOWN_TIMEOUT_MAX_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The timeout must be at most %u seconds.",
                                         VM_SHUTDOWN_TIMEOUT_MAX_SEC);
        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        r = vm_reboot(b->vm, timeout, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VMSUP_ERROR_BUSY, "The VM cannot reboot while it is %s.",
                                         vm_state_to_string(b->vm->state));
        if (r < 0)
                return r;
        return 1;
}

static int method_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        uint32_t timeout;
        int force, r;

        r = sd_bus_message_read(m, "ub", &timeout, &force);
        if (r < 0)
                return r;
        if (timeout > VM_SHUTDOWN_TIMEOUT_MAX_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The timeout must be at most %u seconds.",
                                         VM_SHUTDOWN_TIMEOUT_MAX_SEC);
        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        r = vm_shutdown(b->vm, timeout, force, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        if (r < 0)
                return r;
        return 1;
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        r = vm_stop(b->vm, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, VMSUP_ERROR_NOT_RUNNING, "The VM is not running.");
        if (r < 0)
                return r;
        return 1;
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        return bus_qmp_call(b, m, "system_reset", NULL, bus_qmp_reply_empty, error);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        vm_note_pause_requested(b->vm);
        return bus_qmp_call(b, m, "stop", NULL, bus_qmp_reply_empty, error);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        vm_note_resume_requested(b->vm);
        return bus_qmp_call(b, m, "cont", NULL, bus_qmp_reply_empty, error);
}

static bool qkeycode_is_valid(const char *k) {
        size_t n = strlen(k);
        if (n == 0 || n > 32)
                return false;
        for (const char *p = k; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

static int method_send_key(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        _cleanup_strv_free_ char **keys = NULL;
        json_t *args = NULL, *arr;
        uint32_t hold_ms;
        int r;

        r = sd_bus_message_read_strv(m, &keys);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "u", &hold_ms);
        if (r < 0)
                return r;
        if (strv_length(keys) == 0 || strv_length(keys) > SENDKEY_MAX_KEYS)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Give between 1 and %u keys.",
                                         SENDKEY_MAX_KEYS);
        for (char **k = keys; *k; k++)
                if (!qkeycode_is_valid(*k))
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                "Keys are QKeyCode names such as \"ctrl\", \"alt\", \"delete\".");
        if (hold_ms > SENDKEY_MAX_HOLD_MS)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "hold_ms must be at most %u.",
                                         SENDKEY_MAX_HOLD_MS);
        r = bus_require(b, m, PRIV_VM_CONSOLE, error);
        if (r < 0)
                return r;

        arr = json_array();
        args = json_object();
        if (!arr || !args) {
                json_decref(arr);
                json_decref(args);
                return -ENOMEM;
        }
        for (char **k = keys; *k; k++)
                json_array_append_new(arr, json_pack("{s:s,s:s}", "type", "qcode", "data", *k));
        json_object_set_new(args, "keys", arr);
        if (hold_ms > 0)
                json_object_set_new(args, "hold-time", json_integer(hold_ms));
        r = bus_qmp_call(b, m, "send-key", args, bus_qmp_reply_empty, error);
        json_decref(args);
        return r;
}

/* QEMU's /proc/PID/stat, kept open between GetStatus calls: a pread() per call instead of
 * open, fstat, two reads and close. One VM per process: one descriptor. */
static int stat_fd = -EBADF;
static pid_t stat_pid;

static ssize_t proc_stat_read(pid_t pid, char *buf, size_t size) {
        for (int attempt = 0; attempt < 2; attempt++) {
                ssize_t n;

                if (stat_fd < 0 || stat_pid != pid) {
                        char path[64];

                        stat_fd = safe_close(stat_fd);
                        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
                        stat_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (stat_fd < 0)
                                return -errno;
                        stat_pid = pid;
                }
                n = pread(stat_fd, buf, size, 0);
                if (n >= 0)
                        return n;
                /* The process it was opened for is gone (a pid used again): open anew. */
                stat_fd = safe_close(stat_fd);
        }
        return -ESRCH;
}

static int proc_read_usage(pid_t pid, uint64_t *ret_cpu_usec, uint64_t *ret_rss) {
        char buf[1024];
        unsigned long long utime = 0, stime = 0, rss_pages = 0;
        ssize_t n;
        char *p;

        n = proc_stat_read(pid, buf, sizeof buf - 1);
        if (n < 0)
                return (int) n;
        buf[n] = '\0';
        /* The command name may contain anything; fields follow the last ')'. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %llu",
                         &utime, &stime, &rss_pages) != 3)
                return -EIO;
        *ret_cpu_usec = (utime + stime) * USEC_PER_SEC / (uint64_t) sysconf(_SC_CLK_TCK);
        *ret_rss = rss_pages * (uint64_t) sysconf(_SC_PAGESIZE);
        return 0;
}

static int reply_status(Vm *vm, sd_bus_message *m, const char *qmp_status) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t cpu = 0, rss = 0, uptime = 0;
        int r;

        if (vm_is_active(vm)) {
                (void) proc_read_usage(vm->pid, &cpu, &rss);
                uptime = now_usec(CLOCK_MONOTONIC) - vm->started_at_mono;
        }
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "a{sv}", 10,
                                  "state", "s", vm_state_to_string(vm->state),
                                  "state-reason", "s", vm->state_reason ?: "",
                                  "qmp-status", "s", qmp_status ?: "",
                                  "pid", "u", (uint32_t) (vm->pid > 0 ? vm->pid : 0),
                                  "uptime-usec", "t", uptime,
                                  "cpu-usec", "t", cpu,
                                  "rss-bytes", "t", rss,
                                  "agent-connected", "b", vm->agent_connected,
                                  "qemu-version", "s", vm->qemu_version ?: "",
                                  "event-seq", "t", vm->events ? vm_events_last_seq(vm->events) : UINT64_C(0));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* query-status's answer (or its failure: then without qmp-status) completes GetStatus. */
static void on_query_status(VmBus *b, sd_bus_message *m, int error, json_t *result, const char *err_class,
                            const char *err_desc) {
        json_t *st = error >= 0 ? json_object_get(result, "status") : NULL;

        (void) reply_status(b->vm, m, json_is_string(st) ? json_string_value(st) : "");
}

static int method_get_status(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        if (vm_is_running(b->vm))
                return bus_qmp_call(b, m, "query-status", NULL, on_query_status, error);
        r = reply_status(b->vm, m, "");
        return r < 0 ? r : 1;
}

/* GetStats(as groups): empty = all. More than STATS_GROUPS_MAX entries or an unknown
 * group is InvalidArgs. */
static int method_get_stats(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        unsigned groups = 0, n = 0;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *g;
                int k;

                r = sd_bus_message_read(m, "s", &g);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (++n > STATS_GROUPS_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "At most %u groups.",
                                                 STATS_GROUPS_MAX);
                k = stats_group_from_string(g);
                if (k < 0) {
                        char safe[64];

                        text_sanitize(safe, sizeof safe, g, strlen(g), 0);
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown statistics group \"%s\" (known: state, cpu-total, vcpu, "
                                                 "balloon, block, agent).", safe);
                }
                groups |= STATS_GROUP_BIT(k);
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        r = bus_require(b, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        return vm_stats_get(b, m, groups ?: STATS_GROUP_ALL);
}

/* ---- events ---- */

static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        Caller caller;
        int r;

        r = bus_require_caller(b, m, PRIV_VM_AUDIT, &caller, error);
        if (r < 0)
                return r;
        if (!b->vm->events)
                return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "Events are not available.");
        if (sd_bus_message_get_sender(m))
                r = vm_events_subscribe(b->vm->events, sd_bus_message_get_sender(m), &caller);
        else
                r = vm_events_subscribe_peer(b->vm->events, sd_bus_message_get_bus(m), &caller);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VMSUP_ERROR_BUSY, "There are %u subscribers already, try again later.",
                                         VM_EVENTS_SUBSCRIBERS_MAX);
        if (r < 0)
                return r;
        /* Sent before any signal that follows it: the caller knows where the signals start. */
        return sd_bus_reply_method_return(m, "t", vm_events_last_seq(b->vm->events));
}

static int method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        int r;

        r = bus_require(b, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        if (b->vm->events && sd_bus_message_get_sender(m))
                (void) vm_events_unsubscribe(b->vm->events, sd_bus_message_get_sender(m));
        else if (b->vm->events)
                (void) vm_events_unsubscribe_peer(b->vm->events, sd_bus_message_get_bus(m));
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_events(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        VmBus *b = userdata;
        uint64_t since;
        int r;

        r = sd_bus_message_read(m, "t", &since);
        if (r < 0)
                return r;
        r = bus_require(b, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        if (!b->vm->events)
                return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "Events are not available.");
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = vm_events_append(b->vm->events, reply, since);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Reload(): root only, as SIGHUP (reload.h). A refused reload is InvalidArgs with "FILE:
 * $.json.path: why" and changes nothing; the answer comes once the launcher answered. */
static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        _cleanup_free_ char *why = NULL;
        Caller caller;
        PrivSet privs;
        int r;

        r = bus_caller(b, m, &caller, &privs, error);
        if (r < 0)
                return r;
        if (!caller_is_root(&caller))
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Reload is root-only.");
        r = vm_reload(b->vm, m, &why);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOBUFS)
                return sd_bus_error_setf(error, VMSUP_ERROR_BUSY, "%s", why ?: "Too many reloads are waiting.");
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s", why ?: strerror(-r));
        return 1; /* answered when the launcher has */
}

/* ---- properties (authorized by bus-object.c before sd-bus reads them) ---- */

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VmBus *b = userdata;
        Vm *vm = b->vm;

        if (streq(property, "Name"))
                return sd_bus_message_append(reply, "s", vm->config->name);
        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
        if (streq(property, "StateReason"))
                return sd_bus_message_append(reply, "s", vm->state_reason ?: "");
        if (streq(property, "Pid"))
                return sd_bus_message_append(reply, "u", (uint32_t) (vm->pid > 0 ? vm->pid : 0));
        if (streq(property, "QemuVersion"))
                return sd_bus_message_append(reply, "s", vm->qemu_version ?: "");
        if (streq(property, "StartedAtUSec"))
                return sd_bus_message_append(reply, "t", vm->started_at_usec);
        if (streq(property, "AgentConnected"))
                return sd_bus_message_append(reply, "b", vm->agent_connected);
        if (streq(property, "PendingChanges"))
                return sd_bus_message_append_strv(reply, vm->pending_keys);
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property.");
}

/* Every method is SD_BUS_VTABLE_UNPRIVILEGED: the handlers authorize each call from the
 * credential cache themselves. Without the flag sd-bus adds its own check, which asks the
 * bus synchronously and admits only the daemon's own uid. */
static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateReason", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Pid", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QemuVersion", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StartedAtUSec", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AgentConnected", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PendingChanges", "as", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("u", timeout_sec, "b", force), SD_BUS_NO_RESULT,
                                method_shutdown, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartWithOptions", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT,
                                method_start_with_options, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reboot", SD_BUS_ARGS("u", timeout_sec), SD_BUS_NO_RESULT, method_reboot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendKey", SD_BUS_ARGS("as", keys, "u", hold_ms), SD_BUS_NO_RESULT,
                                method_send_key, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", status), method_get_status,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStats", SD_BUS_ARGS("as", groups), SD_BUS_RESULT("a{sv}", stats),
                                method_get_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Subscribe", SD_BUS_NO_ARGS, SD_BUS_RESULT("t", seq), method_subscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unsubscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_unsubscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetEvents", SD_BUS_ARGS("t", since), SD_BUS_RESULT("a(tsst)", events),
                                method_get_events, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("StateChanged", SD_BUS_ARGS("s", state, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Event", SD_BUS_ARGS("s", name, "s", data_json, "t", timestamp_usec), 0),
        SD_BUS_VTABLE_END,
};

const BusInterface vm_bus_interface = {
        .name = VM_INTERFACE,
        .vtable = vm_vtable,
};

/* ---- signals: to subscribers only ---- */

bool vm_bus_may_audit(const Caller *caller, void *userdata) {
        VmBus *b = userdata;
        PrivSet privs = policy_acl_privileges(b->vm->config->acl, b->vm->config->n_acl, caller) |
                        policy_acl_privileges(b->vm->host_acl, b->vm->n_host_acl, caller);

        return policy_check_privilege(PRIV_VM_AUDIT, caller, privs, NULL, 0) >= 0;
}

typedef struct SignalArgs {
        Vm *vm;
        const char *member;
        const char *name, *data; /* Event */
        uint64_t timestamp_usec;
        const char *const *properties; /* PropertiesChanged */
} SignalArgs;

static int build_vm_signal(sd_bus *bus, sd_bus_message **ret, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const SignalArgs *a = userdata;
        Vm *vm = a->vm;
        int r;

        r = sd_bus_message_new_signal(bus, &m, VM_OBJECT_PATH, VM_INTERFACE, a->member);
        if (r < 0)
                return r;
        if (streq(a->member, "StateChanged"))
                r = sd_bus_message_append(m, "ss", vm_state_to_string(vm->state), vm->state_reason ?: "");
        else
                r = sd_bus_message_append(m, "sst", a->name, a->data, a->timestamp_usec);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* What sd_bus_emit_properties_changed() builds, which it can only broadcast. */
static int build_properties_changed(sd_bus *bus, sd_bus_message **ret, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const SignalArgs *a = userdata;
        VmBus b = { .vm = a->vm };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_signal(bus, &m, VM_OBJECT_PATH, "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", VM_INTERFACE);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (const char *const *p = a->properties; *p; p++) {
                const sd_bus_vtable *v;

                for (v = vm_vtable + 1; v->type != _SD_BUS_VTABLE_END; v++)
                        if (v->type == _SD_BUS_VTABLE_PROPERTY && streq(v->x.property.member, *p))
                                break;
                if (v->type == _SD_BUS_VTABLE_END)
                        return -EINVAL;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", *p);
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', v->x.property.signature);
                if (r >= 0)
                        r = property_get(bus, VM_OBJECT_PATH, VM_INTERFACE, *p, m, &b, &error);
                sd_bus_error_free(&error);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "as", 0);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static uint64_t now_realtime(void) {
        return now_usec(CLOCK_REALTIME);
}

void vm_emit_state_changed(Vm *vm) {
        static const char *const props[] = { "State", "StateReason", NULL };
        _cleanup_free_ char *data = NULL;
        json_t *j;

        if (!vm->bus || !vm->events)
                return;
        j = json_pack("{s:s,s:s}", "state", vm_state_to_string(vm->state), "reason", vm->state_reason ?: "");
        data = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(j);
        if (data)
                (void) vm_events_record(vm->events, "StateChanged", data, now_realtime());
        vm_events_send(vm->events, build_vm_signal, &(SignalArgs) { .vm = vm, .member = "StateChanged" });
        vm_events_send(vm->events, build_properties_changed, &(SignalArgs) { .vm = vm, .properties = props });
}

void vm_emit_properties_changed(Vm *vm, const char *property) {
        const char *const props[] = { property, NULL };

        if (!vm->bus || !vm->events)
                return;
        vm_events_send(vm->events, build_properties_changed, &(SignalArgs) { .vm = vm, .properties = props });
}

void vm_emit_event(Vm *vm, const char *name, json_t *data, uint64_t timestamp_usec) {
        _cleanup_free_ char *s = NULL;
        char safe_name[128];

        if (!vm->bus || !vm->events)
                return;
        s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        text_sanitize(safe_name, sizeof safe_name, name, name ? strlen(name) : 0, 0);
        uint64_t dropped = 0, last_dropped = 0;

        (void) vm_events_record(vm->events, safe_name, s ?: "{}", timestamp_usec);
        if (!vm_events_signal_budget(vm->events, now_usec(CLOCK_MONOTONIC), vm_events_last_seq(vm->events),
                                     &dropped, &last_dropped))
                return;
        if (dropped > 0) {
                char notice[96];

                snprintf(notice, sizeof notice, "{\"count\":%" PRIu64 ",\"last_seq\":%" PRIu64 "}", dropped,
                         last_dropped);
                vm_events_send(vm->events, build_vm_signal,
                               &(SignalArgs) { .vm = vm, .member = "Event", .name = VM_EVENTS_DROPPED_NAME,
                                               .data = notice, .timestamp_usec = now_realtime() });
        }
        vm_events_send(vm->events, build_vm_signal,
                       &(SignalArgs) { .vm = vm, .member = "Event", .name = safe_name, .data = s ?: "{}",
                                       .timestamp_usec = timestamp_usec });
}
