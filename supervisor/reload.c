/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reload without a restart: see reload.h for what applies when. */

#include <nss.h>

#include "bus-errors.h"
#include "launch.h"
#include "log.h"
#include "reload.h"
#include "sandbox.h"
#include "vm-dbus.h"

/* The launcher took, late, a definition whose reload had failed: what the file says now is
 * reloaded, so that the supervisor and the launcher agree again. */
static void on_late_reload(void *userdata) {
        _cleanup_free_ char *why = NULL;
        Vm *vm = userdata;

        log_info("VM %s: reloading the definition the QEMU launcher took late.", vm->config->name);
        if (vm_reload(vm, NULL, &why) < 0 && vm->on_reloaded)
                vm->on_reloaded(vm); /* refused, logged: starts wait for a reload that succeeds */
}

void vm_reload_setup(Vm *vm, const char *acl_path) {
        free(vm->acl_path);
        vm->acl_path = acl_path ? strdup(acl_path) : NULL;
        launch_on_late_reload(on_late_reload, vm);
}

void vm_reload_confined(void) {
        /* Other sources (systemd's userdb, LDAP, …) are modules glibc would load now, with
         * system calls the filter refuses: the supervisor would die of its own reload. The
         * built-in files source reads /etc/passwd and /etc/group with open and read. */
        (void) __nss_configure_lookup("passwd", "files");
        (void) __nss_configure_lookup("group", "files");
}

_printf_(2, 3) static int refuse(char **ret_error, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EINVAL;
}

/* What this supervisor set up once and a reload cannot change. */
static int check_fixed(const VmConfig *cur, const VmConfig *n, char **ret_error) {
        const char *why = "takes a new supervisor (systemctl restart, or SIGUSR2 to hand the VM over)";

        if (vm_config_has_agent_device(cur) != vm_config_has_agent_device(n))
                return refuse(ret_error, "%s: $.agent: whether QEMU has an agent channel %s", n->path, why);
        if (streq(cur->machine, "none") != streq(n->machine, "none"))
                return refuse(ret_error, "%s: $.qemu.machine: whether QEMU has a serial console %s", n->path, why);
        if (cur->console_log_kib != n->console_log_kib)
                return refuse(ret_error, "%s: $.console_log_kib: the console log's size %s", n->path, why);
        if ((sandbox_supervisor_caps(n) & ~sandbox_supervisor_caps(cur)) != 0)
                return refuse(ret_error, "%s: $.run_as: QEMU's identity can change from root to another user only "
                              "when the supervisor starts", n->path);
        return 0;
}

static bool strv_equal(char * const *a, char * const *b) {
        size_t i;

        for (i = 0; a && b && a[i] && b[i]; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return (!a || !a[i]) && (!b || !b[i]);
}

static void set_pending(Vm *vm, VmConfig *pending, char **keys) {
        bool changed = !strv_equal(vm->pending_keys, keys);

        vm_config_free(vm->pending);
        strv_free(vm->pending_keys);
        vm->pending = pending;
        vm->pending_keys = keys;
        if (changed)
                vm_emit_properties_changed(vm, "PendingChanges");
}

/* A reload between its checks and the launcher's answer, and the Reload calls it answers. */
#define RELOAD_CALLERS_MAX 16U

typedef struct VmReload {
        Vm *vm;
        sd_event_source *exit_source;
        bool in_flight;
        /* What the launcher is asked to take, and what comes with it. */
        VmConfig *n;
        AclEntry *host_acl;
        size_t n_host_acl;
        char **keys;
        /* Answered by the reload in flight. */
        sd_bus_message *callers[RELOAD_CALLERS_MAX];
        size_t n_callers;
        /* Asked for while one is in flight: one more reload, after it, answers them. */
        sd_bus_message *next[RELOAD_CALLERS_MAX];
        size_t n_next;
        bool again;
} VmReload;

static void reload_staged_free(VmReload *rl) {
        rl->n = vm_config_free(rl->n);
        rl->host_acl = mfree(rl->host_acl);
        rl->n_host_acl = 0;
        rl->keys = strv_free(rl->keys);
}

static void reload_answer(sd_bus_message **callers, size_t *n, const char *error, const char *message) {
        for (size_t i = 0; i < *n; i++) {
                if (error)
                        (void) sd_bus_reply_method_errorf(callers[i], error, "%.511s", message);
                else
                        (void) sd_bus_reply_method_return(callers[i], NULL);
                callers[i] = sd_bus_message_unref(callers[i]);
        }
        *n = 0;
}

static void reload_commit(Vm *vm, VmReload *rl) {
        vm_config_swap_at_once(vm->config, rl->n);
        free(vm->host_acl);
        vm->host_acl = TAKE_PTR(rl->host_acl);
        vm->n_host_acl = rl->n_host_acl;
        if (!vm_is_active(vm)) {
                /* Also when QEMU stopped while the launcher was asked: it starts from this. */
                vm_config_swap_qemu(vm->config, rl->n);
                set_pending(vm, NULL, NULL);
        } else if (strv_length(rl->keys) == 0) {
                set_pending(vm, NULL, NULL);
        } else {
                set_pending(vm, TAKE_PTR(rl->n), TAKE_PTR(rl->keys));
        }
        if (vm->pending_keys) {
                _cleanup_free_ char *joined = NULL;
                size_t len = 0;

                for (size_t i = 0; vm->pending_keys[i]; i++)
                        len += strlen(vm->pending_keys[i]) + 2;
                joined = malloc(len + 1);
                if (joined) {
                        joined[0] = '\0';
                        for (size_t i = 0; vm->pending_keys[i]; i++) {
                                if (i > 0)
                                        strcat(joined, ", ");
                                strcat(joined, vm->pending_keys[i]);
                        }
                }
                log_info("VM %s: reloaded %s and %s; the running QEMU keeps its settings of %s until it starts anew",
                         vm->config->name, vm->config->path, vm->acl_path ?: "no host ACL", joined ?: "some keys");
        } else
                log_info("VM %s: reloaded %s and %s", vm->config->name, vm->config->path,
                         vm->acl_path ?: "no host ACL");
        reload_staged_free(rl);
}

/* The reason of a refusal, in *error when nothing more precise is there. */
static void reload_refused(Vm *vm, int r, char **error) {
        if (!*error && r == -EBUSY && launch_busy_reloading())
                *error = strdup("the QEMU launcher has not answered the previous reload yet: reload again once it has");
        if (!*error && r == -EBUSY)
                *error = strdup("QEMU is being started: reload again once it runs");
        if (!*error && r == -EOPNOTSUPP)
                *error = strdup("the QEMU launcher predates reloading (its QEMU was started by an older "
                                "vmsupd): restart the unit once QEMU has stopped");
        if (!*error && r == -ETIMEDOUT)
                if (asprintf(error, "the QEMU launcher did not answer within %u ms (stopped or swapped out?): "
                             "reload again once it runs", LAUNCH_REPLY_TIMEOUT_MSEC) < 0)
                        *error = NULL;
        if (!*error && r == -ECHILD)
                *error = strdup("the QEMU launcher is gone");
        if (!*error && r != -ENOMEM)
                if (asprintf(error, "%s: %s", vm->config->path, strerror(-r)) < 0)
                        *error = NULL;
        log_warning("VM %s: reload refused, the configuration in force stays: %s", vm->config->name,
                    *error ?: strerror(-r));
}

static void on_launcher_reloaded(int error, const char *message, void *userdata);

/* The checks, then the request to the launcher. Returns 0 when it is asked (the answer comes
 * to on_launcher_reloaded()), or -errno with the reason in *ret_error and nothing changed. */
static int reload_begin(Vm *vm, VmReload *rl, char **ret_error) {
        _cleanup_(vm_config_freep) VmConfig *n = NULL;
        _cleanup_free_ AclEntry *host_acl = NULL;
        _cleanup_strv_free_ char **keys = NULL;
        _cleanup_free_ char *error = NULL, *dir = NULL;
        size_t n_host_acl = 0;
        const char *slash;
        int r;

        *ret_error = NULL;
        slash = strrchr(vm->config->path, '/');
        dir = slash ? strndup(vm->config->path, (size_t) (slash - vm->config->path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        r = vm_config_load(dir, vm->config->name, &n, &error);
        if (r >= 0 && vm->acl_path)
                r = acl_file_load(vm->acl_path, &host_acl, &n_host_acl, &error);
        if (r >= 0)
                r = check_fixed(vm->config, n, &error);
        if (r >= 0 && vm_is_active(vm))
                r = vm_config_changed_keys(vm->config, n, &keys);
        /* Last: once the launcher took the definition, nothing here fails. */
        if (r >= 0)
                r = launch_reload(n->text, n->text_len, on_launcher_reloaded, rl);
        if (r < 0) {
                reload_refused(vm, r, &error);
                *ret_error = TAKE_PTR(error);
                return r;
        }
        log_info("VM %s: asking the launcher to take the reloaded definition", vm->config->name);
        rl->in_flight = true;
        rl->n = TAKE_PTR(n);
        rl->host_acl = TAKE_PTR(host_acl);
        rl->n_host_acl = n_host_acl;
        rl->keys = TAKE_PTR(keys);
        return 0;
}

/* Runs the reload asked for while one was in flight; returns when one is in flight again or
 * nobody waits. */
static void reload_next(Vm *vm, VmReload *rl) {
        while (!rl->in_flight && (rl->again || rl->n_next > 0)) {
                _cleanup_free_ char *why = NULL;
                int r;

                rl->again = false;
                memcpy(rl->callers, rl->next, rl->n_next * sizeof rl->next[0]);
                rl->n_callers = rl->n_next;
                rl->n_next = 0;
                r = reload_begin(vm, rl, &why);
                if (r >= 0)
                        return;
                reload_answer(rl->callers, &rl->n_callers, SD_BUS_ERROR_INVALID_ARGS, why ?: strerror(-r));
                if (vm->on_reloaded)
                        vm->on_reloaded(vm);
        }
}

static void on_launcher_reloaded(int error, const char *message, void *userdata) {
        VmReload *rl = userdata;
        Vm *vm = rl->vm;

        rl->in_flight = false;
        if (error < 0) {
                _cleanup_free_ char *why = message ? strdup(message) : NULL;

                reload_refused(vm, error, &why);
                reload_staged_free(rl);
                reload_answer(rl->callers, &rl->n_callers,
                              error == -ETIMEDOUT ? SD_BUS_ERROR_TIMEOUT : SD_BUS_ERROR_INVALID_ARGS,
                              why ?: strerror(-error));
        } else {
                reload_commit(vm, rl);
                reload_answer(rl->callers, &rl->n_callers, NULL, NULL);
        }
        if (vm->on_reloaded)
                vm->on_reloaded(vm);
        reload_next(vm, rl);
        vm_reload_ended(vm);
}

static int on_loop_exit(sd_event_source *s, void *userdata) {
        VmReload *rl = userdata;

        if (rl->in_flight)
                launch_reload_abandon(rl);
        rl->in_flight = false;
        reload_answer(rl->callers, &rl->n_callers, VMSUP_ERROR_NOT_RUNNING, "The supervisor is exiting.");
        reload_answer(rl->next, &rl->n_next, VMSUP_ERROR_NOT_RUNNING, "The supervisor is exiting.");
        return 0;
}

int vm_reload(Vm *vm, sd_bus_message *m, char **ret_error) {
        VmReload *rl = vm->reload;
        int r;

        *ret_error = NULL;
        if (!rl) {
                rl = vm->reload = calloc(1, sizeof *rl);
                if (!rl)
                        return -ENOMEM;
                rl->vm = vm;
                /* Before sd-bus closes the bus at the loop's exit: who waits is told. */
                r = sd_event_add_exit(vm->event, &rl->exit_source, on_loop_exit, rl);
                if (r >= 0)
                        r = sd_event_source_set_priority(rl->exit_source, SD_EVENT_PRIORITY_IMPORTANT);
                if (r < 0) {
                        vm_reload_free(vm);
                        return r;
                }
        }
        if (rl->in_flight) {
                if (!m) {
                        rl->again = true;
                        return 0;
                }
                if (rl->n_next >= RELOAD_CALLERS_MAX) {
                        *ret_error = strdup("too many reloads are waiting: reload again once they are answered");
                        return -ENOBUFS;
                }
                rl->next[rl->n_next++] = sd_bus_message_ref(m);
                return 0;
        }
        r = reload_begin(vm, rl, ret_error);
        if (r < 0)
                return r;
        if (m)
                rl->callers[rl->n_callers++] = sd_bus_message_ref(m);
        return 0;
}

bool vm_reload_in_flight(const Vm *vm) {
        return vm->reload && vm->reload->in_flight;
}

void vm_reload_free(Vm *vm) {
        VmReload *rl = vm->reload;

        launch_on_late_reload(NULL, NULL);
        if (!rl)
                return;
        (void) on_loop_exit(NULL, rl);
        rl->exit_source = sd_event_source_disable_unref(rl->exit_source);
        reload_staged_free(rl);
        vm->reload = mfree(rl);
}

void vm_reload_apply_pending(Vm *vm) {
        if (!vm->pending)
                return;
        vm_config_swap_qemu(vm->config, vm->pending);
        set_pending(vm, NULL, NULL);
}
