/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who hears the VM's signals, and what they missed.
 *
 * Signals are never broadcast: a VM's state changes and QMP events (guest panics, block
 * errors, agent port changes, migration progress) are for callers holding VM.Audit. A
 * connection subscribes (VM1.Subscribe) and from then on receives StateChanged, Event and
 * PropertiesChanged addressed to it (a signal with a destination reaches that connection
 * only; dbus-daemon lets nobody else eavesdrop on it but privileged monitors). Each
 * subscriber is checked again at every signal against the ACLs in force, so a right
 * withdrawn stops the signals. A subscription ends with Unsubscribe or with its connection:
 * each subscriber has a match rule for its own departure (NameOwnerChanged, arg0 = its
 * name), at most VM_EVENTS_SUBSCRIBERS_MAX of them (Busy beyond), which keeps the
 * supervisor's match rules (with bus-creds.h's) well below dbus-daemon's 512 per connection.
 *
 * Every StateChanged and Event is also kept in a ring with a sequence number (1, 2, …) and
 * a timestamp: at most VM_EVENTS_RING_MAX events and VM_EVENTS_RING_BYTES of names and
 * data, the oldest dropped first. VM1.GetEvents(since) returns those after since, so a
 * caller who read the state (GetStatus's event-seq says which event it reflects) and then
 * subscribes (Subscribe returns the last sequence number) fills the gap between the two.
 *
 * A QEMU that floods events (a guest can cause some at will) must not turn into a flood of
 * signals to every subscriber, nor a write queue that grows without bound: Event signals
 * are sent at most VM_EVENTS_SIGNAL_RATE per second (a token bucket holding
 * VM_EVENTS_SIGNAL_BURST); the events beyond are kept in the ring only, and the next Event
 * signal sent is preceded by one named VM_EVENTS_DROPPED_NAME with data
 * {"count":N,"last_seq":S}: N events were not signalled, the last of them numbered S
 * (GetEvents has those the ring still holds). StateChanged and PropertiesChanged are
 * never dropped. */

#include <systemd/sd-bus.h>

#include "macro.h"
#include "policy.h"

#define VM_EVENTS_SUBSCRIBERS_MAX 64U
#define VM_EVENTS_RING_MAX 1024U
#define VM_EVENTS_RING_BYTES (4U * 1024U * 1024U)
#define VM_EVENTS_SIGNAL_RATE 1000U
#define VM_EVENTS_SIGNAL_BURST 1000U
#define VM_EVENTS_DROPPED_NAME "vmsup-events-dropped"

typedef struct VmEvents VmEvents;

/* Whether a subscriber may still receive the VM's signals (it holds VM.Audit now). */
typedef bool (*vm_events_allowed_t)(const Caller *caller, void *userdata);
/* Builds one signal (a new message each call: one is sent to each subscriber). */
typedef int (*vm_events_build_t)(sd_bus *bus, sd_bus_message **ret, void *userdata);

int vm_events_new(sd_bus *bus, vm_events_allowed_t allowed, void *userdata, VmEvents **ret);
VmEvents *vm_events_free(VmEvents *ev);
DEFINE_TRIVIAL_CLEANUP_FUNC(VmEvents *, vm_events_free);

/* The sequence number of the last event recorded, 0 before the first. */
uint64_t vm_events_last_seq(const VmEvents *ev);
/* Records an event in the ring (name and data_json are copied). Returns 0 or -ENOMEM. */
int vm_events_record(VmEvents *ev, const char *name, const char *data_json, uint64_t timestamp_usec);
/* Appends a(tsst): the events after since, oldest first. Returns 0 or -errno. */
int vm_events_append(VmEvents *ev, sd_bus_message *m, uint64_t since);

/* Subscribes the connection name (unique name) with caller's credentials (copied).
 * Returns 1 when subscribed now, 0 when it already was, -EBUSY when the subscribers are
 * VM_EVENTS_SUBSCRIBERS_MAX, or -errno. */
int vm_events_subscribe(VmEvents *ev, const char *name, const Caller *caller);
/* The same for a direct connection (no name; bus-direct.h), its signals written to it alone;
 * it ends with vm_events_unsubscribe_peer(), which its disconnection calls. */
int vm_events_subscribe_peer(VmEvents *ev, sd_bus *peer, const Caller *caller);
int vm_events_unsubscribe_peer(VmEvents *ev, sd_bus *peer);
/* Returns 1 when name was subscribed, 0 otherwise. */
int vm_events_unsubscribe(VmEvents *ev, const char *name);
size_t vm_events_subscribers(const VmEvents *ev);

/* Whether an Event signal may be sent now (now_usec: CLOCK_MONOTONIC). When it may and
 * events were dropped before, *ret_dropped and *ret_last_dropped say how many and the last
 * one's number (then forgotten); otherwise the event (seq) is counted as dropped. */
bool vm_events_signal_budget(VmEvents *ev, uint64_t now_usec, uint64_t seq, uint64_t *ret_dropped,
                             uint64_t *ret_last_dropped);

/* Sends the signal build makes to each subscriber still allowed, addressed to it. */
void vm_events_send(VmEvents *ev, vm_events_build_t build, void *userdata);
