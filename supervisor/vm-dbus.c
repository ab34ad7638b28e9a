/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.vmsup.VM1 and org.vmsup.Monitor1 on /org/vmsup/VM.
 *
 * Every handler has one shape: read arguments → validate (InvalidArgs) →
 * authorize from the sender's bus credentials → act → reply (now, or when QEMU
 * answers). Authorization comes from bus-creds.c's cache, which the object
 * callback fills before any handler runs. */

#include <stdarg.h>

#include "bus-creds.h"
#include "bus-fds.h"
#include "log.h"
#include "policy.h"
#include "vm-dbus.h"
#include "vm.h"

#define HMP_LINE_MAX (64U * 1024U)
#define EXECUTE_JSON_MAX (1024U * 1024U)
#define SENDKEY_MAX_KEYS 16U
#define SENDKEY_MAX_HOLD_MS 10000U

void sanitize_text(const char *in, char *out, size_t max) {
        size_t n = 0;

        if (max == 0)
                return;
        for (const unsigned char *p = (const unsigned char *) (in ?: ""); *p && n + 1 < max; p++)
                out[n++] = (*p >= 0x20 && *p < 0x7f) ? (char) *p : '?';
        out[n] = '\0';
}

void vm_reply_error(sd_bus_message *m, const char *name, const char *fmt, ...) {
        char text[512];
        va_list ap;

        if (!m)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        (void) sd_bus_reply_method_errorf(m, name, "%s", text);
}

void vm_reply_ok(sd_bus_message *m) {
        if (m)
                (void) sd_bus_reply_method_return(m, NULL);
}

/* ---- authorization ---- */

int vm_bus_caller(Vm *vm, sd_bus_message *m, Caller *ret_caller, PrivSet *ret_privs, sd_bus_error *error) {
        Caller caller;

        if (creds_cache_lookup(vm->creds, m, &caller) < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                        "The caller's credentials are not available.");
        *ret_caller = caller;
        *ret_privs = policy_acl_privileges(vm->config->acl, vm->config->n_acl, &caller) |
                     policy_acl_privileges(vm->host_acl, vm->n_host_acl, &caller);
        return 0;
}

int vm_bus_policy_error(sd_bus_error *error, int r, const char *msg) {
        switch (r) {
        case -EINVAL:
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, msg);
        case -EACCES:
        case -EPERM:
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, msg);
        default:
                return sd_bus_error_set_errno(error, r);
        }
}

int vm_bus_require(Vm *vm, sd_bus_message *m, Privilege needed, sd_bus_error *error) {
        char msg[256];
        Caller caller;
        PrivSet privs;
        int r;

        r = vm_bus_caller(vm, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = policy_check_privilege(needed, &caller, privs, msg, sizeof msg);
        if (r < 0)
                return vm_bus_policy_error(error, r, msg);
        return 0;
}

/* ---- QMP calls answered on the bus ---- */

typedef enum BusReplyKind {
        BUS_REPLY_EMPTY,
        BUS_REPLY_HMP,     /* "return" is HMP's output string */
        BUS_REPLY_JSON,    /* compact JSON of "return" */
        BUS_REPLY_STATUS,  /* GetStatus */
} BusReplyKind;

typedef struct BusCall {
        Vm *vm;
        sd_bus_message *message;
        BusReplyKind kind;
} BusCall;

static int reply_status(Vm *vm, sd_bus_message *m, const char *qmp_status);

void vm_bus_reply_qemu_error(sd_bus_message *m, int error, const char *err_class, const char *err_desc) {
        char cls[64], desc[512];

        switch (error) {
        case -EREMOTEIO:
                sanitize_text(err_class, cls, sizeof cls);
                sanitize_text(err_desc, desc, sizeof desc);
                vm_reply_error(m, "org.vmsup.Error.QemuError", "%s: %s", cls, desc);
                break;
        case -ECONNRESET:
        case -ENOTCONN:
                vm_reply_error(m, "org.vmsup.Error.NotRunning", "QEMU went away before it answered.");
                break;
        case -ETIMEDOUT:
                vm_reply_error(m, SD_BUS_ERROR_TIMEOUT, "QEMU did not answer in time.");
                break;
        case -EFBIG:
                vm_reply_error(m, "org.vmsup.Error.ResponseTooLarge", "QEMU's answer is larger than 16 MiB.");
                break;
        case -ECANCELED:
                vm_reply_error(m, "org.vmsup.Error.NotRunning", "The request was cancelled.");
                break;
        default:
                vm_reply_error(m, SD_BUS_ERROR_FAILED, "QEMU request failed: %s.", strerror(-error));
        }
}

static void on_bus_qmp_reply(QmpClient *c, int error, json_t *result, const char *err_class, const char *err_desc,
                             void *userdata) {
        BusCall *bc = userdata;

        if (bc->kind == BUS_REPLY_STATUS) {
                json_t *st = error >= 0 ? json_object_get(result, "status") : NULL;
                (void) reply_status(bc->vm, bc->message, json_is_string(st) ? json_string_value(st) : "");
        } else if (error < 0)
                vm_bus_reply_qemu_error(bc->message, error, err_class, err_desc);
        else if (bc->kind == BUS_REPLY_EMPTY)
                vm_reply_ok(bc->message);
        else if (bc->kind == BUS_REPLY_HMP) {
                if (!json_is_string(result))
                        vm_reply_error(bc->message, "org.vmsup.Error.QemuError",
                                       "QEMU answered human-monitor-command with a non-string.");
                else if (json_string_length(result) > BUS_REPLY_MAX)
                        vm_reply_error(bc->message, "org.vmsup.Error.ResponseTooLarge",
                                       "The output is larger than 16 MiB.");
                else {
                        /* D-Bus strings are UTF-8 without NUL; HMP output is QEMU's text. */
                        _cleanup_free_ char *s = strndup(json_string_value(result), json_string_length(result));
                        if (s)
                                for (char *p = s; *p; p++)
                                        if ((unsigned char) *p >= 0x80)
                                                *p = '?';
                        if (!s || sd_bus_reply_method_return(bc->message, "s", s) < 0)
                                vm_reply_error(bc->message, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
                }
        } else {
                _cleanup_free_ char *s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
                if (!s)
                        vm_reply_error(bc->message, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
                else if (strlen(s) > BUS_REPLY_MAX)
                        vm_reply_error(bc->message, "org.vmsup.Error.ResponseTooLarge",
                                       "The reply is larger than 16 MiB.");
                else if (sd_bus_reply_method_return(bc->message, "s", s) < 0)
                        vm_reply_error(bc->message, SD_BUS_ERROR_NO_MEMORY, "Out of memory.");
        }
        sd_bus_message_unref(bc->message);
        free(bc);
}

/* Sends a QMP command whose answer becomes the reply to m. Returns 1 (reply pending) or
 * a negative error with error set. */
static int qmp_call_for(Vm *vm, sd_bus_message *m, const char *execute, json_t *arguments, BusReplyKind kind,
                        sd_bus_error *error) {
        BusCall *bc;
        int r;

        if (!vm_is_running(vm))
                return sd_bus_error_set(error, "org.vmsup.Error.NotRunning", "The VM is not running.");
        bc = calloc(1, sizeof *bc);
        if (!bc)
                return -ENOMEM;
        *bc = (BusCall) { .vm = vm, .message = sd_bus_message_ref(m), .kind = kind };
        r = qmp_send(vm->qmp, execute, arguments, 0, on_bus_qmp_reply, bc, NULL);
        if (r < 0) {
                sd_bus_message_unref(bc->message);
                free(bc);
                if (r == -EBUSY || r == -ENOBUFS)
                        return sd_bus_error_set(error, "org.vmsup.Error.Busy", "Too many requests to QEMU in flight.");
                if (r == -EINVAL)
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Not a valid QMP command.");
                if (r == -ENOMEM)
                        return r;
                return sd_bus_error_set(error, "org.vmsup.Error.NotRunning", "The VM is not running.");
        }
        return 1;
}

/* ---- org.vmsup.VM1 methods ---- */

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        int r;

        r = vm_bus_require(vm, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        if (vm_is_active(vm) && vm->state != VM_STARTING)
                return sd_bus_error_set(error, "org.vmsup.Error.AlreadyRunning", "The VM is already running.");
        r = vm_start(vm, m);
        if (r == -EBUSY)
                return sd_bus_error_set(error, "org.vmsup.Error.AlreadyRunning", "The VM is already running.");
        if (r < 0)
                return sd_bus_error_setf(error, "org.vmsup.Error.QemuError", "QEMU could not be started: %s.",
                                         vm->state_reason && *vm->state_reason ? vm->state_reason : strerror(-r));
        return 1;
}

static int method_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        uint32_t timeout;
        int force, r;

        r = sd_bus_message_read(m, "ub", &timeout, &force);
        if (r < 0)
                return r;
        if (timeout > 86400)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The timeout must be at most 86400 seconds.");
        r = vm_bus_require(vm, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        r = vm_shutdown(vm, timeout, force, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, "org.vmsup.Error.NotRunning", "The VM is not running.");
        if (r < 0)
                return r;
        return 1;
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        int r;

        r = vm_bus_require(vm, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        r = vm_stop(vm, m);
        if (r == -ESRCH)
                return sd_bus_error_set(error, "org.vmsup.Error.NotRunning", "The VM is not running.");
        if (r < 0)
                return r;
        return 1;
}

static int method_simple(sd_bus_message *m, Vm *vm, const char *execute, sd_bus_error *error) {
        int r;

        r = vm_bus_require(vm, m, PRIV_VM_POWERMGMT, error);
        if (r < 0)
                return r;
        if (streq(execute, "stop"))
                vm->pause_requested = true;
        else if (streq(execute, "cont"))
                vm->resume_requested = true;
        return qmp_call_for(vm, m, execute, NULL, BUS_REPLY_EMPTY, error);
}

static int method_reset(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_simple(m, userdata, "system_reset", error);
}

static int method_pause(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_simple(m, userdata, "stop", error);
}

static int method_resume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return method_simple(m, userdata, "cont", error);
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
        Vm *vm = userdata;
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
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Give between 1 and 16 keys.");
        for (char **k = keys; *k; k++)
                if (!qkeycode_is_valid(*k))
                        return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                                "Keys are QKeyCode names such as \"ctrl\", \"alt\", \"delete\".");
        if (hold_ms > SENDKEY_MAX_HOLD_MS)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "hold_ms must be at most 10000.");
        r = vm_bus_require(vm, m, PRIV_VM_CONSOLE, error);
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
        r = qmp_call_for(vm, m, "send-key", args, BUS_REPLY_EMPTY, error);
        json_decref(args);
        return r;
}

static int proc_read_usage(pid_t pid, uint64_t *ret_cpu_usec, uint64_t *ret_rss) {
        char path[64], buf[1024];
        _cleanup_fclose_ FILE *f = NULL;
        unsigned long long utime = 0, stime = 0, rss_pages = 0;
        size_t n;
        char *p;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        n = fread(buf, 1, sizeof buf - 1, f);
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
        r = sd_bus_message_append(reply, "a{sv}", 9,
                                  "state", "s", vm_state_to_string(vm->state),
                                  "state-reason", "s", vm->state_reason ?: "",
                                  "qmp-status", "s", qmp_status ?: "",
                                  "pid", "u", (uint32_t) (vm->pid > 0 ? vm->pid : 0),
                                  "uptime-usec", "t", uptime,
                                  "cpu-usec", "t", cpu,
                                  "rss-bytes", "t", rss,
                                  "agent-connected", "b", vm->agent_connected,
                                  "qemu-version", "s", vm->qemu_version ?: "");
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_status(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        int r;

        r = vm_bus_require(vm, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        if (vm_is_running(vm))
                return qmp_call_for(vm, m, "query-status", NULL, BUS_REPLY_STATUS, error);
        r = reply_status(vm, m, "");
        return r < 0 ? r : 1;
}

/* ---- org.vmsup.Monitor1 ---- */

static int method_human_command(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        const char *line;
        char msg[256];
        Caller caller;
        PrivSet privs;
        json_t *args;
        int r;

        r = sd_bus_message_read(m, "s", &line);
        if (r < 0)
                return r;
        if (strlen(line) > HMP_LINE_MAX)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The command line is longer than 64 KiB.");
        r = vm_bus_caller(vm, m, &caller, &privs, error);
        if (r < 0)
                return r;
        r = policy_check_hmp(line, &caller, privs, msg, sizeof msg);
        if (r < 0)
                return vm_bus_policy_error(error, r, msg);
        args = json_pack("{s:s}", "command-line", line);
        if (!args)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "The command line is not valid UTF-8.");
        r = qmp_call_for(vm, m, "human-monitor-command", args, BUS_REPLY_HMP, error);
        json_decref(args);
        return r;
}

int vm_bus_parse_json_command(const char *text, size_t max, json_t **ret, sd_bus_error *error) {
        json_error_t jerr;
        json_t *cmd;

        if (strlen(text) > max)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "The command is larger than %zu KiB.",
                                         max / 1024);
        cmd = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!cmd) /* jansson's text quotes the input: say where, not what */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The command is not valid JSON (line %d, column %d).", jerr.line, jerr.column);
        *ret = cmd;
        return 0;
}

static int method_execute(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        const char *text;
        char msg[256];
        Caller caller;
        PrivSet privs;
        json_t *cmd;
        int r;

        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        r = vm_bus_parse_json_command(text, EXECUTE_JSON_MAX, &cmd, error);
        if (r < 0)
                return r;
        r = vm_bus_caller(vm, m, &caller, &privs, error);
        if (r >= 0) {
                r = policy_check_qmp(cmd, &caller, privs, msg, sizeof msg);
                if (r < 0)
                        r = vm_bus_policy_error(error, r, msg);
                else
                        r = qmp_call_for(vm, m, json_string_value(json_object_get(cmd, "execute")),
                                         json_object_get(cmd, "arguments"), BUS_REPLY_JSON, error);
        }
        json_decref(cmd);
        return r;
}

/* ---- properties ---- */

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;

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
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property.");
}

static const char * const vm_properties[] = {
        "Name", "State", "StateReason", "Pid", "QemuVersion", "StartedAtUSec", "AgentConnected", NULL,
};
static const char vm_property_types[] = "sssustb";

/* Properties.Get / GetAll, authorized like methods (VM.Audit). sd-bus's own handling has
 * no hook for authorization, so the object callback answers these itself. */
static int properties_dispatch(sd_bus_message *m, Vm *vm, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *member = sd_bus_message_get_member(m), *iface, *prop = NULL;
        bool ours;
        int r;

        if (streq(member, "Set"))
                return sd_bus_error_set(error, SD_BUS_ERROR_PROPERTY_READ_ONLY, "All properties are read-only.");
        if (streq(member, "Get"))
                r = sd_bus_message_read(m, "ss", &iface, &prop);
        else if (streq(member, "GetAll"))
                r = sd_bus_message_read(m, "s", &iface);
        else
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method.");
        if (r < 0)
                return r;
        ours = streq(iface, VM_INTERFACE);
        if (!ours && !streq(iface, MONITOR_INTERFACE) && !streq(iface, AGENT_INTERFACE) && *iface)
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_INTERFACE, "Unknown interface.");
        r = vm_bus_require(vm, m, PRIV_VM_AUDIT, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        if (prop) {
                size_t i;
                for (i = 0; vm_properties[i]; i++)
                        if (streq(vm_properties[i], prop))
                                break;
                if (!ours || !vm_properties[i])
                        return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property.");
                char t[2] = { vm_property_types[i], 0 };
                r = sd_bus_message_open_container(reply, 'v', t);
                if (r < 0)
                        return r;
                r = property_get(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, prop, reply, vm, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
        } else {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r < 0)
                        return r;
                for (size_t i = 0; ours && vm_properties[i]; i++) {
                        char t[2] = { vm_property_types[i], 0 };
                        if ((r = sd_bus_message_open_container(reply, 'e', "sv")) < 0 ||
                            (r = sd_bus_message_append(reply, "s", vm_properties[i])) < 0 ||
                            (r = sd_bus_message_open_container(reply, 'v', t)) < 0 ||
                            (r = property_get(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, vm_properties[i], reply, vm,
                                              error)) < 0 ||
                            (r = sd_bus_message_close_container(reply)) < 0 ||
                            (r = sd_bus_message_close_container(reply)) < 0)
                                return r;
                }
                r = sd_bus_message_close_container(reply);
        }
        if (r < 0)
                return r;
        r = sd_bus_send(NULL, reply, NULL);
        return r < 0 ? r : 1;
}

/* ---- vtables and dispatch ----
 *
 * Every method is SD_BUS_VTABLE_UNPRIVILEGED: the handlers authorize each call from the
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
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("u", timeout_sec, "b", force), SD_BUS_NO_RESULT,
                                method_shutdown, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_pause, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendKey", SD_BUS_ARGS("as", keys, "u", hold_ms), SD_BUS_NO_RESULT,
                                method_send_key, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", status), method_get_status, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("StateChanged", SD_BUS_ARGS("s", state, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Event", SD_BUS_ARGS("s", name, "s", data_json, "t", timestamp_usec), 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable monitor_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("HumanCommand", SD_BUS_ARGS("s", command_line), SD_BUS_RESULT("s", output),
                                method_human_command, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Execute", SD_BUS_ARGS("s", qmp_json), SD_BUS_RESULT("s", return_json),
                                method_execute, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

typedef struct MethodEntry {
        const char *interface;
        const char *member;
        sd_bus_message_handler_t handler;
} MethodEntry;

static const MethodEntry method_table[] = {
        { VM_INTERFACE, "Start", method_start },
        { VM_INTERFACE, "Shutdown", method_shutdown },
        { VM_INTERFACE, "Stop", method_stop },
        { VM_INTERFACE, "Reset", method_reset },
        { VM_INTERFACE, "Pause", method_pause },
        { VM_INTERFACE, "Resume", method_resume },
        { VM_INTERFACE, "SendKey", method_send_key },
        { VM_INTERFACE, "GetStatus", method_get_status },
        { MONITOR_INTERFACE, "HumanCommand", method_human_command },
        { MONITOR_INTERFACE, "Execute", method_execute },
};

static bool is_open_interface(const char *iface) {
        return streq(iface, "org.freedesktop.DBus.Introspectable") || streq(iface, "org.freedesktop.DBus.Peer");
}

/* Runs a method call whose sender is known. Also used for calls that waited for credentials. */
static int dispatch_known(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        const char *iface = sd_bus_message_get_interface(m), *member = sd_bus_message_get_member(m);
        sd_bus_message_handler_t h = NULL;

        if (!iface || !member)
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method.");
        if (streq(iface, "org.freedesktop.DBus.Properties"))
                return properties_dispatch(m, vm, error);
        h = vm_agent_method(iface, member);
        for (size_t i = 0; !h && i < ELEMENTSOF(method_table); i++)
                if (streq(method_table[i].interface, iface) && streq(method_table[i].member, member))
                        h = method_table[i].handler;
        if (!h)
                return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_METHOD, "Unknown method.");
        /* Arguments were checked against the vtable's signature by sd-bus on the direct path;
         * on this path check them here. */
        if (!sd_bus_message_has_signature(m, vm_method_signature(iface, member)))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid arguments.");
        /* Handlers reply themselves, now or later, exactly like on the vtable path. */
        return h(m, vm, error);
}

/* Runs before the vtables: every call to the object other than introspection passes the
 * credential gate first. */
static int on_object_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        const char *iface;
        int r;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        iface = sd_bus_message_get_interface(m);
        /* Descriptors only where the method takes them, refused before the call is held (the
         * filter in bus-fds.c has taken its copies: they are closed off the loop either way). */
        if (bus_message_has_fds(m) &&
            (!iface || !strchr(vm_method_signature(iface, sd_bus_message_get_member(m) ?: ""), SD_BUS_TYPE_UNIX_FD)))
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "This method takes no file descriptors.");
        if (!iface || is_open_interface(iface))
                return 0;
        r = creds_cache_gate(vm->creds, m);
        if (r != 0)
                return r;
        if (streq(iface, "org.freedesktop.DBus.Properties"))
                return properties_dispatch(m, vm, error);
        return 0; /* on to the vtable */
}

const char *vm_method_signature(const char *iface, const char *member) {
        static const struct {
                const char *iface, *member, *sig;
        } sigs[] = {
                { VM_INTERFACE, "Shutdown", "ub" },
                { VM_INTERFACE, "SendKey", "asu" },
                { MONITOR_INTERFACE, "HumanCommand", "s" },
                { MONITOR_INTERFACE, "Execute", "s" },
                { AGENT_INTERFACE, "Command", "s" },
                { AGENT_INTERFACE, "ReadFile", "stth" },
                { AGENT_INTERFACE, "WriteFile", "shb" },
        };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (streq(sigs[i].iface, iface) && streq(sigs[i].member, member))
                        return sigs[i].sig;
        return "";
}

void vm_emit_state_changed(Vm *vm) {
        if (!vm->bus)
                return;
        (void) sd_bus_emit_signal(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, "StateChanged", "ss",
                                  vm_state_to_string(vm->state), vm->state_reason ?: "");
        (void) sd_bus_emit_properties_changed(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, "State", "StateReason", NULL);
}

void vm_emit_properties_changed(Vm *vm, const char *property) {
        if (!vm->bus)
                return;
        (void) sd_bus_emit_properties_changed(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, property, NULL);
}

void vm_emit_event(Vm *vm, const char *name, json_t *data, uint64_t timestamp_usec) {
        _cleanup_free_ char *s = NULL;
        char safe_name[128];

        if (!vm->bus)
                return;
        s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        sanitize_text(name, safe_name, sizeof safe_name);
        (void) sd_bus_emit_signal(vm->bus, VM_OBJECT_PATH, VM_INTERFACE, "Event", "sst", safe_name, s ?: "{}",
                                  timestamp_usec);
}

/* Callers with no right here are not remembered between calls. */
static bool caller_has_rights(const Caller *caller, void *userdata) {
        Vm *vm = userdata;

        return caller_is_root(caller) || policy_acl_privileges(vm->config->acl, vm->config->n_acl, caller) != 0 ||
               policy_acl_privileges(vm->host_acl, vm->n_host_acl, caller) != 0;
}

int vm_bus_attach(Vm *vm, sd_bus *bus) {
        int r;

        vm->bus = sd_bus_ref(bus);
        r = creds_cache_new(bus, dispatch_known, caller_has_rights, vm, &vm->creds);
        if (r < 0)
                return r;
        r = sd_bus_add_object(bus, &vm->object_slot, VM_OBJECT_PATH, on_object_message, vm);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(bus, &vm->vm_slot, VM_OBJECT_PATH, VM_INTERFACE, vm_vtable, vm);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(bus, &vm->monitor_slot, VM_OBJECT_PATH, MONITOR_INTERFACE, monitor_vtable, vm);
        if (r < 0)
                return r;
        return vm_agent_bus_attach(vm, bus);
}

void vm_bus_detach(Vm *vm) {
        vm->object_slot = sd_bus_slot_unref(vm->object_slot);
        vm->vm_slot = sd_bus_slot_unref(vm->vm_slot);
        vm->monitor_slot = sd_bus_slot_unref(vm->monitor_slot);
        vm->agent_slot = sd_bus_slot_unref(vm->agent_slot);
        vm->creds = creds_cache_free(vm->creds);
        vm->bus = sd_bus_unref(vm->bus);
}
