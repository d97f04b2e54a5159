//! A directory another process holds: write commands say so plainly.

use crate::common::{fails, ok};
use crate::holder::Holder;

#[test]
fn write_commands_on_a_held_directory_say_it_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["put", "k", "v"]);
    let mut holder = Holder::start(&d);
    holder.put("from-app", "1");
    let expected = format!(
        "error: the data directory {} is locked by another process (an application has it \
         open); write commands need exclusive access\n",
        d.display()
    );
    for args in [
        &["put", "k", "v2"][..],
        &["delete", "k"],
        &["compact"],
        &["rebuild"],
        &["import", "-"],
    ] {
        assert_eq!(fails(&d, args, 1), expected, "{args:?}");
    }
    drop(holder);
    // Once the application is gone, writes work again and nothing was lost.
    ok(&d, &["put", "k", "v2"]);
    assert_eq!(ok(&d, &["scan"]), "from-app\t1\nk\tv2\n");
}
