//! Self-test of the Redis Cluster fixture: 3 masters + 3 replicas, a killed
//! master's replica takes over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testkit::RedisCluster;

#[test]
fn forms_a_cluster_and_promotes_a_replica_when_a_master_dies() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    assert_eq!(cluster.ports().len(), 6);
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(
        cluster.nodes_var().split(',').count(),
        6,
        "{}",
        cluster.nodes_var()
    );
    let master = cluster.master_of("{revoked}:x");
    // Redirected by any other node: the key lives on its slot's master.
    assert_eq!(
        cluster
            .command(master, &["SET", "{revoked}:x", "1"])
            .unwrap(),
        "OK"
    );
    // Replication is asynchronous: wait until the replica has the write.
    cluster.wait_for_replicas(master);
    let other = cluster
        .masters()
        .into_iter()
        .find(|p| *p != master)
        .unwrap();
    let moved = cluster.command(other, &["GET", "{revoked}:x"]).unwrap_err();
    assert!(moved.starts_with("MOVED "), "{moved}");

    cluster.kill(master);
    cluster.wait_until_healed(3);
    let promoted = cluster.master_of("{revoked}:x");
    assert_ne!(promoted, master);
    assert!(!cluster.running_ports().contains(&master));
    assert_eq!(
        cluster.command(promoted, &["GET", "{revoked}:x"]).unwrap(),
        "1"
    );
    assert!(
        cluster
            .command_calls()
            .iter()
            .any(|(name, calls)| name == "get" && *calls >= 1),
        "{:?}",
        cluster.command_calls()
    );
}
