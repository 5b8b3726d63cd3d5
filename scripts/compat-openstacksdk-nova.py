#!/usr/bin/python3
"""compat-openstacksdk-nova.py — make, with Debian's python3-openstacksdk,
the calls nova's ironic driver makes against a fake-hardware node, in its
order: spawn, reboot, rescue and unrescue, destroy of a deployed instance,
and destroy of an instance whose build stopped before deploying. Exits
non-zero on any difference from what Ironic does.

Each nova call cites its function in openstack/nova nova/virt/ironic/driver.py
(line numbers at nova commit 00a030403f, Aug 2026). nova reaches Ironic
through openstacksdk's baremetal proxy (driver.py ironic_connection), as this
script does; the operator's part (enrolling the node) is marked as such.

Usage: IRONIC_URL=http://127.0.0.1:6385 scripts/compat-openstacksdk-nova.py

Environment (all optional):
  IRONIC_URL                  API base URL (default http://127.0.0.1:6385)
  OS_USERNAME / OS_PASSWORD   for an API in http_basic mode (default: noauth)
  WAIT                        seconds to wait for each state (default 120)
"""

import base64
import gzip
import os
import sys
import time
import uuid

try:
    import openstack
    from openstack import exceptions as sdk_exc
except ImportError:
    sys.exit("compat-openstacksdk-nova: python3-openstacksdk is missing "
             "(scripts/ensure-deps.sh test installs it)")

IRONIC_URL = os.environ.get("IRONIC_URL", "http://127.0.0.1:6385").rstrip("/")
WAIT = float(os.environ.get("WAIT", "120"))
INTERVAL = 0.2  # nova's [ironic]api_retry_interval, shortened for a test

# driver.py:81-83 (_NODE_FIELDS): the fields nova asks for.
NODE_FIELDS = ("uuid", "power_state", "target_power_state", "provision_state",
               "target_provision_state", "last_error", "maintenance",
               "properties", "instance_uuid", "traits", "resource_class")

failed = 0


def step(msg):
    print("== " + msg, flush=True)


def check(ok, what):
    global failed
    if ok:
        print("   ok: " + what, flush=True)
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr, flush=True)
    return ok


def connect():
    """An openstacksdk connection as nova's get_sdk_adapter makes, without
    Keystone: noauth, or http_basic when OS_USERNAME is set."""
    if os.environ.get("OS_USERNAME"):
        auth_type = "http_basic"
        auth = {"endpoint": IRONIC_URL, "username": os.environ["OS_USERNAME"],
                "password": os.environ.get("OS_PASSWORD", "")}
    else:
        auth_type, auth = "none", {"endpoint": IRONIC_URL}
    return openstack.connect(auth_type=auth_type, auth=auth,
                             baremetal_endpoint_override=IRONIC_URL)


def wait_until(what, fetch, done, fail=lambda _: None):
    """Poll as nova's FixedIntervalLoopingCall does, up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return check(True, what)
        reason = fail(last)
        if reason:
            return check(False, "%s: %s" % (what, reason))
        time.sleep(INTERVAL)
    return check(False, "%s: not within %ss (last %s)" % (what, WAIT, last))


def instance_node(bm, instance_uuid):
    """driver.py:216-235 (_validate_instance_and_node): the one node whose
    instance_uuid is the instance's, or None."""
    nodes = list(bm.nodes(instance_id=instance_uuid, fields=NODE_FIELDS))
    if len(nodes) > 1:
        check(False, "more than one node for instance %s: %s" % (instance_uuid, nodes))
    return nodes[0] if nodes else None


def config_drive():
    """driver.py:1111-1145 (_generate_configdrive): nova sends a gzipped,
    base64-encoded ISO9660 image. This one is the smallest volume that
    carries the ISO9660 descriptors (nova builds a full one with
    genisoimage); its contents are the next issue's."""
    sector = 2048
    pvd = b"\x01CD001\x01".ljust(sector, b"\x00")
    end = b"\xffCD001\x01".ljust(sector, b"\x00")
    iso = b"\x00" * (16 * sector) + pvd + end
    return base64.b64encode(gzip.compress(iso)).decode()


def enroll(bm, name):
    """The operator's part, not nova's: a fake-hardware node, its port,
    manage and provide, as `baremetal node create --driver fake-hardware`."""
    node = bm.create_node(name=name, driver="fake-hardware", resource_class="baremetal",
                          rescue_interface="fake",
                          properties={"cpus": 2, "memory_mb": 4096, "local_gb": 20, "cpu_arch": "x86_64"})
    bm.create_port(node_uuid=node.id, address="52:54:01:%02x:%02x:%02x" % tuple(os.urandom(3)))
    bm.set_node_provision_state(node, "manage", wait=True, timeout=WAIT)
    bm.set_node_provision_state(node, "provide", wait=True, timeout=WAIT)
    return bm.get_node(node.id)


def prepare_and_plug(bm, node_id, instance_uuid, vif):
    """ComputeManager's build before spawn: prepare_for_spawn, then the
    VIFs before block device mapping."""
    # driver.py:373-396 (prepare_for_spawn) → driver.py:208-214 (_get_node)
    node = bm.get_node(node_id, fields=NODE_FIELDS)
    check(node.provision_state == "available" and not node.instance_id,
          "node %s available and free before spawn" % node_id)
    # driver.py:359-371 (_set_instance_id): reserve the node for the instance.
    bm.update_node(node, retry_on_conflict=False, instance_id=instance_uuid)
    check(bm.get_node(node_id).instance_id == instance_uuid, "instance_uuid set")
    # driver.py:2099-2114 (prepare_networks_before_block_device_mapping) →
    # driver.py:1605-1615 (_plug_vifs) → driver.py:1582-1603 (_plug_vif).
    bm.attach_vif_to_node(node.id, vif, retry_on_conflict=False)
    check(bm.list_node_vifs(node.id) == expected_vifs(bm, node_id, [vif]),
          "VIFs listed after attaching %s" % vif)
    return node


def expected_vifs(bm, node_id, vifs):
    """What ironfleet lists after attaching vifs: each, recorded on a port
    as Ironic's flat and neutron interfaces do (network/common.py
    VIFPortIDMixin). Ironic's noop network interface accepts a VIF and
    lists none (drivers/modules/network/noop.py); ironfleet's noop records
    it rather than accept and drop it (api/README.md)."""
    return vifs


def add_instance_info(bm, node, display_name):
    """driver.py:411-433 (_add_instance_info_to_node) with the patch of
    nova/virt/ironic/patcher.py get_deploy_patch."""
    patch = [{"op": "add", "path": "/instance_info/" + k, "value": v} for k, v in (
        ("image_source", str(uuid.uuid4())),  # a Glance image ID
        ("root_gb", "10"), ("swap_mb", "0"), ("display_name", display_name),
        ("vcpus", "2"), ("nova_host_id", "compute-1"), ("memory_mb", "4096"),
        ("local_gb", str(node.properties.get("local_gb", 0))),
        ("project_id", "p-1"), ("project_name", "demo"), ("user_id", "u-1"), ("user_name", "demo"),
        ("flavor_name", "baremetal"), ("fixed_ips", "[]"), ("floating_ips", "[]"),
        ("capabilities", '{"boot_mode": "uefi"}'),
    )]
    bm.patch_node(node, patch)
    got = bm.get_node(node.id).instance_info
    check(got.get("display_name") == display_name and got.get("root_gb") == "10",
          "instance_info patched: %s" % {k: got.get(k) for k in ("display_name", "root_gb", "image_source")})


def spawn(bm, node_id, instance_uuid, vif):
    step("spawn on %s" % node_id)
    node = prepare_and_plug(bm, node_id, instance_uuid, vif)
    # driver.py:1146-1288 (spawn): _get_node, instance_info, …
    node = bm.get_node(node_id, fields=NODE_FIELDS)
    add_instance_info(bm, node, "vm-" + instance_uuid[:8])
    # … no volumes, so no volume targets (driver.py:441-477) …
    # … validate, requiring deploy, power and storage (driver.py:1208-1231) …
    v = bm.validate_node(node_id, required=None)
    for iface in ("deploy", "power", "storage"):
        check(v[iface].result, "validate %s: %s" % (iface, v[iface].reason or "ok"))
    # … the config drive's network metadata reads ports and port groups
    # (driver.py:1048-1060, _get_network_metadata) …
    ports = list(bm.ports(node=node_id, details=True))
    check(len(ports) == 1, "ports of the node: %d" % len(ports))
    groups = list(bm.port_groups(node=node_id, details=True))
    check(groups == [], "port groups of the node: %d" % len(groups))
    # … deploy with the config drive (driver.py:1256-1260) …
    bm.set_node_provision_state(node_id, "active", config_drive=config_drive())
    # … and wait for active (driver.py:514-547, _wait_for_active).
    wait_until("node active for instance %s" % instance_uuid,
               lambda: instance_node(bm, instance_uuid),
               lambda n: n is not None and n.provision_state == "active",
               lambda n: "instance gone" if n is None else
               ("deploy failed: %s" % n.last_error if n.provision_state == "deploy failed" else None))


def wait_power(bm, instance_uuid, what):
    """driver.py:549-556 (_wait_for_power_state): until target_power_state is
    none."""
    wait_until(what, lambda: instance_node(bm, instance_uuid),
               lambda n: n is not None and n.target_power_state is None)


def reboot(bm, instance_uuid):
    step("reboot (SOFT)")
    # driver.py:1402-1452 (reboot): soft reboot, falling back to a hard one
    # when the driver refuses it with 400.
    node = instance_node(bm, instance_uuid)
    try:
        bm.set_node_power_state(node.id, "soft rebooting")
        check(True, "soft reboot accepted")
    except sdk_exc.BadRequestException as e:
        check(False, "soft reboot refused (%s); fake-hardware supports it in Ironic" % e)
        bm.set_node_power_state(node.id, "rebooting")
    wait_power(bm, instance_uuid, "soft reboot done")
    check(instance_node(bm, instance_uuid).power_state == "power on", "power on after reboot")
    step("reboot (HARD)")
    bm.set_node_power_state(node.id, "rebooting")
    wait_power(bm, instance_uuid, "hard reboot done")


def rescue(bm, instance_uuid):
    step("rescue")
    node = instance_node(bm, instance_uuid)
    # driver.py:2279-2328 (rescue): rescue with the password, wait for rescue.
    bm.set_node_provision_state(node.id, "rescue", rescue_password="s3cret-rescue")
    wait_until("node rescue", lambda: instance_node(bm, instance_uuid),
               lambda n: n is not None and n.provision_state == "rescue",
               lambda n: ("rescue failed: %s" % n.last_error) if n and n.provision_state == "rescue failed" else None)
    step("unrescue")
    # driver.py:2330-2370 (unrescue): unrescue, wait for active.
    bm.set_node_provision_state(node.id, "unrescue")
    wait_until("node active after unrescue", lambda: instance_node(bm, instance_uuid),
               lambda n: n is not None and n.provision_state == "active",
               lambda n: ("unrescue failed: %s" % n.last_error) if n and n.provision_state == "unrescue failed" else None)


def destroy(bm, instance_uuid, vifs):
    """driver.py:1356-1400 (destroy)."""
    node = instance_node(bm, instance_uuid)
    if not check(node is not None, "instance %s found by instance_uuid" % instance_uuid):
        return
    if node.provision_state in ("active", "deploy failed", "error", "wait call-back", "deploying",
                                "deploy hold", "rescue", "rescuing", "rescue wait", "rescue failed",
                                "unrescue failed"):
        # driver.py:1290-1354 (_unprovision): deleted, then wait until the
        # instance's node is gone or is cleaning/available.
        bm.set_node_provision_state(node.id, "deleted")
        wait_until("node unprovisioned", lambda: instance_node(bm, instance_uuid),
                   lambda n: n is None or n.provision_state in ("cleaning", "clean wait", "available"),
                   lambda n: ("clean failed: %s" % n.last_error) if n and n.provision_state == "clean failed" else None)
        return
    # driver.py:509-512 (_cleanup_deploy): volume targets (driver.py:479-507),
    # VIFs (driver.py:1617-1633), instance_info and instance_uuid
    # (driver.py:435-443).
    targets = list(bm.volume_targets(details=True, node=node.id))
    check(targets == [], "volume targets of the node: %d" % len(targets))
    for t in targets:
        bm.delete_volume_target(t.id, ignore_missing=False)
    for vif in vifs:
        try:
            bm.detach_vif_from_node(node.id, vif)
        except sdk_exc.BadRequestException:
            pass  # nova: "VIF isn't attached", logged at debug
    bm.update_node(node, instance_id=None, instance_info={})
    after = bm.get_node(node.id)
    check(after.instance_id is None and not after.instance_info,
          "instance_uuid and instance_info cleared: %s %s" % (after.instance_id, after.instance_info))


def main():
    bm = connect().baremetal
    step("API at %s, openstacksdk %s" % (IRONIC_URL, openstack.version.__version__))
    try:
        node = enroll(bm, "nova-%d" % os.getpid())
        node2 = enroll(bm, "nova-%d-2" % os.getpid())
    except sdk_exc.SDKException as e:
        check(False, "enrolling a fake-hardware node: %s" % e)
        print("== %d failure(s)" % failed)
        sys.exit(1)
    vif = str(uuid.uuid4())  # a Neutron port ID
    inst = str(uuid.uuid4())
    try:
        spawn(bm, node.id, inst, vif)
        reboot(bm, inst)
        rescue(bm, inst)
        step("destroy the deployed instance")
        destroy(bm, inst, [vif])
        wait_until("node available again", lambda: bm.get_node(node.id),
                   lambda n: n.provision_state == "available")

        # On a second node: Ironic's teardown leaves VIFs attached (nova's
        # network teardown deletes the Neutron ports), so the first node's
        # port may still carry the first VIF.
        step("destroy an instance whose build stopped before deploying")
        inst2, vif2 = str(uuid.uuid4()), str(uuid.uuid4())
        n = prepare_and_plug(bm, node2.id, inst2, vif2)
        add_instance_info(bm, n, "vm-" + inst2[:8])
        destroy(bm, inst2, [vif2])
        check(bm.list_node_vifs(node2.id) == [], "VIF detached by destroy")
    except sdk_exc.SDKException as e:
        check(False, "%s: %s" % (type(e).__name__, e))
    finally:
        for n in (node, node2):
            try:
                bm.delete_node(n.id)
            except sdk_exc.SDKException as e:
                print("cleanup: deleting %s: %s" % (n.id, e), file=sys.stderr)
    print("== %d failure(s)" % failed)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
