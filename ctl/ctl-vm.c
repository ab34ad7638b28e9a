/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl: org.vmsup.VM1 — list, status and the lifecycle verbs. */

#include <inttypes.h>
#include <time.h>

#include "config.h"
#include "ctl.h"

typedef struct ListEntry {
        char *name;
        json_t *props; /* GetAll's answer, or NULL */
        char *error_name, *error_message;
        bool done;
} ListEntry;

#define MAX(a, b) ((a) > (b) ? (a) : (b))

static size_t list_pending = 0;

static int on_get_all(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ListEntry *e = userdata;
        const sd_bus_error *err = sd_bus_message_get_error(reply);

        if (err) {
                e->error_name = strdup(err->name ?: SD_BUS_ERROR_FAILED);
                e->error_message = strdup(err->message ?: "");
        } else if (ctl_json_from_message(reply, &e->props) < 0)
                e->error_name = strdup(SD_BUS_ERROR_INCONSISTENT_MESSAGE);
        e->done = true;
        list_pending--;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static const char *prop_str(json_t *props, const char *key, const char *dflt) {
        json_t *v = json_object_get(props, key);
        return json_is_string(v) ? json_string_value(v) : dflt;
}

static void list_print_text(ListEntry *e, size_t n) {
        int wn = 4, ws = 5;
        char pid[16];

        for (size_t i = 0; i < n; i++) {
                wn = MAX(wn, (int) strlen(e[i].name));
                if (e[i].props)
                        ws = MAX(ws, (int) strlen(prop_str(e[i].props, "State", "")));
        }
        printf("%-*s  %-*s  %7s  %-5s  %s\n", wn, "NAME", ws, "STATE", "PID", "AGENT", "REASON");
        for (size_t i = 0; i < n; i++) {
                if (!e[i].props) {
                        printf("%-*s  %-*s  %7s  %-5s  %s\n", wn, e[i].name, ws, "-", "-", "-",
                               ctl_error_meaning(e[i].error_name, NULL));
                        continue;
                }
                snprintf(pid, sizeof pid, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(e[i].props, "Pid")));
                printf("%-*s  %-*s  %7s  %-5s  %s\n", wn, e[i].name, ws, prop_str(e[i].props, "State", "?"),
                       streq(pid, "0") ? "-" : pid,
                       json_is_true(json_object_get(e[i].props, "AgentConnected")) ? "yes" : "no",
                       prop_str(e[i].props, "StateReason", ""));
        }
}

static int list_print_json(ListEntry *e, size_t n) {
        json_auto_t *a = json_array();

        for (size_t i = 0; a && i < n; i++) {
                json_t *o;

                if (e[i].props)
                        o = json_incref(e[i].props);
                else
                        o = json_pack("{s:s, s:{s:s, s:s, s:s}}", "Name", e[i].name, "error", "name",
                                      e[i].error_name ?: "", "meaning", ctl_error_meaning(e[i].error_name, NULL),
                                      "message", e[i].error_message ?: "");
                if (json_array_append_new(a, o) < 0)
                        return ctl_bus_fail(-ENOMEM, "list");
        }
        if (!a)
                return ctl_bus_fail(-ENOMEM, "list");
        return ctl_print_json(a, false);
}

/* Every VM on the bus: the names org.vmsup.VM.* are the registry. The State of each
 * is asked for all at once and the answers collected as they come. */
int verb_list(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ ListEntry *entries = NULL;
        size_t n_vms = 0;
        int r, status = 0;

        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        r = sd_bus_list_names(bus, &names, NULL);
        if (r < 0)
                return ctl_bus_fail(r, "cannot list the bus names");
        /* Keep the VMs' names, in place. */
        for (char **s = names; s && *s; s++) {
                char *v = TAKE_PTR(*s);

                if (startswith(v, VM_BUS_PREFIX) && vm_name_is_valid(v + strlen(VM_BUS_PREFIX)))
                        names[n_vms++] = v;
                else
                        free(v);
        }
        for (size_t i = 0; i < n_vms; i++)
                memmove(names[i], names[i] + strlen(VM_BUS_PREFIX), strlen(names[i]) - strlen(VM_BUS_PREFIX) + 1);
        if (n_vms > 0)
                qsort(names, n_vms, sizeof(char *), cmp_str);

        if (arg.names_only) {
                if (arg.json) {
                        json_auto_t *a = json_array();
                        for (size_t i = 0; a && i < n_vms; i++)
                                json_array_append_new(a, json_string(names[i]));
                        return a ? ctl_print_json(a, false) : ctl_bus_fail(-ENOMEM, "list");
                }
                for (size_t i = 0; i < n_vms; i++)
                        puts(names[i]);
                return 0;
        }

        entries = calloc(n_vms ?: 1, sizeof(ListEntry));
        if (!entries)
                return ctl_bus_fail(-ENOMEM, "list");
        for (size_t i = 0; i < n_vms; i++) {
                _cleanup_free_ char *dest = NULL;

                entries[i].name = names[i];
                if (asprintf(&dest, VM_BUS_PREFIX "%s", names[i]) < 0)
                        return ctl_bus_fail(-ENOMEM, "list");
                r = sd_bus_call_method_async(bus, NULL, dest, VM_OBJECT, "org.freedesktop.DBus.Properties", "GetAll",
                                             on_get_all, &entries[i], "s", VM_IFACE);
                if (r < 0)
                        return ctl_bus_fail(r, names[i]);
                list_pending++;
        }
        while (list_pending > 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return ctl_bus_fail(r, "list");
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0)
                        return ctl_bus_fail(r, "list");
        }
        /* A supervisor that left the bus meanwhile is no longer a VM to list. */
        size_t kept = 0;
        for (size_t i = 0; i < n_vms; i++) {
                ListEntry e = entries[i];
                if (!e.props && (streq_ptr(e.error_name, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
                                 streq_ptr(e.error_name, SD_BUS_ERROR_NAME_HAS_NO_OWNER))) {
                        free(e.error_name);
                        free(e.error_message);
                        continue;
                }
                entries[kept++] = e;
        }
        n_vms = kept;
        if (arg.json)
                status = list_print_json(entries, n_vms);
        else
                list_print_text(entries, n_vms);
        for (size_t i = 0; i < n_vms; i++) {
                json_decref(entries[i].props);
                free(entries[i].error_name);
                free(entries[i].error_message);
        }
        return status;
}

static void format_bytes(uint64_t b, char buf[static 32]) {
        if (b >= 1024 * 1024 * 1024)
                snprintf(buf, 32, "%.1f GiB", (double) b / (1024.0 * 1024 * 1024));
        else if (b >= 1024 * 1024)
                snprintf(buf, 32, "%.1f MiB", (double) b / (1024.0 * 1024));
        else
                snprintf(buf, 32, "%" PRIu64 " KiB", b / 1024);
}

static void format_span(uint64_t usec, char buf[static 64]) {
        uint64_t s = usec / USEC_PER_SEC;

        if (s >= 86400)
                snprintf(buf, 64, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "min", s / 86400, s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(buf, 64, "%" PRIu64 "h %" PRIu64 "min", s / 3600, s % 3600 / 60);
        else if (s >= 60)
                snprintf(buf, 64, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, 64, "%" PRIu64 ".%03" PRIu64 "s", s, usec % USEC_PER_SEC / 1000);
}

static uint64_t jint(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) ? (uint64_t) json_integer_value(v) : 0;
}

static void status_print_text(json_t *props, json_t *st) {
        const char *state = prop_str(props, "State", "?"), *reason = prop_str(props, "StateReason", "");
        const char *qmp = prop_str(st, "qmp-status", "");
        uint64_t started = jint(props, "StartedAtUSec");
        char b[64], t[64];

        printf("%s\n", prop_str(props, "Name", "?"));
        printf("        State: %s%s%s%s\n", state, *reason ? " (" : "", reason, *reason ? ")" : "");
        if (*qmp)
                printf("   QMP status: %s\n", qmp);
        if (jint(props, "Pid") > 0)
                printf("          Pid: %" PRIu64 "\n", jint(props, "Pid"));
        if (*prop_str(props, "QemuVersion", ""))
                printf("         QEMU: %s\n", prop_str(props, "QemuVersion", ""));
        if (started > 0) {
                time_t tt = (time_t) (started / USEC_PER_SEC);
                struct tm tm;
                format_span(jint(st, "uptime-usec"), b);
                if (localtime_r(&tt, &tm) && strftime(t, sizeof t, "%a %Y-%m-%d %H:%M:%S %Z", &tm) > 0)
                        printf("      Started: %s; up %s\n", t, b);
        }
        if (jint(st, "cpu-usec") > 0 || jint(st, "rss-bytes") > 0) {
                format_span(jint(st, "cpu-usec"), t);
                format_bytes(jint(st, "rss-bytes"), b);
                printf(" QEMU process: %s CPU, %s resident\n", t, b);
        }
        printf("        Agent: %s\n", json_is_true(json_object_get(props, "AgentConnected")) ? "connected" : "not connected");
        {
                json_t *pending = json_object_get(props, "PendingChanges"), *k;
                size_t i;

                if (json_array_size(pending) > 0) {
                        printf("      Pending:");
                        json_array_foreach(pending, i, k)
                                printf("%s %s", i > 0 ? "," : "", json_is_string(k) ? json_string_value(k) : "?");
                        printf(" (reloaded; applied at the next start)\n");
                }
        }
}

int verb_status(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *all = NULL, *st = NULL;
        json_auto_t *props = NULL, *status = NULL;
        const char *name = args[0];
        int r;

        r = ctl_bus_open_vm(name, &bus);
        if (r < 0)
                return -r;
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *dest = NULL;

                if (asprintf(&dest, VM_BUS_PREFIX "%s", name) < 0)
                        return ctl_bus_fail(-ENOMEM, name);
                r = sd_bus_call_method(bus, dest, VM_OBJECT, "org.freedesktop.DBus.Properties", "GetAll", &error, &all,
                                       "s", VM_IFACE);
                if (r < 0)
                        return ctl_error_status(name, &error, r);
        }
        r = ctl_json_from_message(all, &props);
        if (r < 0)
                return ctl_bus_fail(r, name);
        r = ctl_call(bus, name, VM_IFACE, "GetStatus", 0, &st, NULL);
        if (r > 0)
                return r;
        r = ctl_json_from_message(st, &status);
        if (r < 0)
                return ctl_bus_fail(r, name);
        if (arg.json) {
                if (json_object_set(props, "status", status) < 0)
                        return ctl_bus_fail(-ENOMEM, name);
                return ctl_print_json(props, false);
        }
        status_print_text(props, status);
        return 0;
}

/* Start, Stop, Reset, Pause, Resume: no arguments, no answer. The waiting ones
 * (Start, Stop) are bounded by the supervisor, not here. */
int verb_simple(char **args, size_t n, const char *method) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        return ctl_call(bus, args[0], VM_IFACE, method, UINT64_MAX, NULL, NULL);
}

int verb_shutdown(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (arg.timeout_sec > UINT32_MAX) {
                fprintf(stderr, "vmsupctl: --timeout is too large\n");
                return CTL_EXIT_USAGE;
        }
        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        return ctl_call(bus, args[0], VM_IFACE, "Shutdown", UINT64_MAX, NULL, "ub", (uint32_t) arg.timeout_sec,
                        (int) arg.force);
}

/* start NAME [--paused]: Start, or StartWithOptions {"paused": true}. */
int verb_start(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        if (!arg.paused)
                return ctl_call(bus, args[0], VM_IFACE, "Start", UINT64_MAX, NULL, NULL);
        return ctl_call(bus, args[0], VM_IFACE, "StartWithOptions", UINT64_MAX, NULL, "a{sv}", 1, "paused", "b", 1);
}

int verb_reboot(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        if (arg.timeout_sec > UINT32_MAX) {
                fprintf(stderr, "vmsupctl: --timeout is too large\n");
                return CTL_EXIT_USAGE;
        }
        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        return ctl_call(bus, args[0], VM_IFACE, "Reboot", UINT64_MAX, NULL, "u", (uint32_t) arg.timeout_sec);
}

/* sendkey NAME KEY...: each argument is a key, or keys joined with '+' (ctrl+alt+delete). */
int verb_sendkey(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_strv_free_ char **keys = NULL;
        _cleanup_free_ char *dest = NULL;
        int r;

        if (arg.hold_ms > UINT32_MAX) {
                fprintf(stderr, "vmsupctl: --hold-ms is too large\n");
                return CTL_EXIT_USAGE;
        }
        for (size_t i = 1; i < n; i++) {
                _cleanup_free_ char *copy = strdup(args[i]);
                char *save = NULL;

                if (!copy)
                        return ctl_bus_fail(-ENOMEM, "sendkey");
                for (char *k = strtok_r(copy, "+", &save); k; k = strtok_r(NULL, "+", &save))
                        if (strv_extend(&keys, k) < 0)
                                return ctl_bus_fail(-ENOMEM, "sendkey");
        }
        if (!keys) {
                fprintf(stderr, "vmsupctl: sendkey: no key given\n");
                return CTL_EXIT_USAGE;
        }
        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        if (asprintf(&dest, VM_BUS_PREFIX "%s", args[0]) < 0)
                return ctl_bus_fail(-ENOMEM, "sendkey");
        r = sd_bus_message_new_method_call(bus, &m, ctl_dest(bus, dest), VM_OBJECT, VM_IFACE, "SendKey");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, keys);
        if (r >= 0)
                r = sd_bus_message_append(m, "u", (uint32_t) arg.hold_ms);
        if (r < 0)
                return ctl_bus_fail(r, "sendkey");
        {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                r = sd_bus_call(bus, m, 0, &error, NULL);
                if (r < 0)
                        return ctl_error_status(args[0], &error, r);
        }
        return 0;
}
