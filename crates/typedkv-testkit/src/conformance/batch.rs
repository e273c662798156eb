//! `get_many` and `set_many`.

use typedkv::{Backend, Store};

use super::store;
use super::values::{Profile, profile};

/// `get_many` answers in input order, with `None` for gaps and repeated ids answered each
/// time; an empty batch is an empty answer.
pub async fn get_many_keeps_order_with_gaps<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    users.set("a", &profile(1)).await.unwrap();
    users.set("c", &profile(3)).await.unwrap();
    let got = users
        .get_many(&["c", "missing", "a", "c", "b"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(profile(3)),
            None,
            Some(profile(1)),
            Some(profile(3)),
            None
        ]
    );
    assert_eq!(
        users.get_many(&[]).await.unwrap(),
        Vec::<Option<Profile>>::new()
    );
}

/// `set_many` writes every entry (the later of two entries for one id wins) and an empty batch
/// is a no-op.
pub async fn set_many_writes_all<B: Backend>(backend: B) {
    let users = store::<Profile, B>(&backend, "user");
    let (p1, p2, p3) = (profile(1), profile(2), profile(3));
    users
        .set_many(&[("1", &p1), ("2", &p2), ("1", &p3)])
        .await
        .unwrap();
    assert_eq!(
        users.get_many(&["1", "2"]).await.unwrap(),
        vec![Some(p3), Some(p2)]
    );
    users.set_many(&[]).await.unwrap();

    let many: Vec<(String, Profile)> = (0..500)
        .map(|i| (format!("bulk-{i}"), profile(i)))
        .collect();
    let refs: Vec<(&str, &Profile)> = many.iter().map(|(id, p)| (id.as_str(), p)).collect();
    users.set_many(&refs).await.unwrap();
    let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
    let back = users.get_many(&ids).await.unwrap();
    assert!(
        back.iter()
            .zip(&many)
            .all(|(got, (_, want))| got.as_ref() == Some(want))
    );
}
