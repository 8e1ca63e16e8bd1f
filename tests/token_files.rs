//! Token files that become empty or unreadable while the relay runs: the current tokens
//! stay in use, and a later valid file replaces them.

mod common;

use ffrelay::api::TokenStore;

use common::{TestDb, settings};

#[tokio::test]
async fn unusable_token_file_keeps_current_token() {
    let db = TestDb::new();
    let access_file = db.dir.path().join("access");
    let refresh_file = db.dir.path().join("refresh");
    std::fs::write(&access_file, "access-1\n").unwrap();
    std::fs::write(&refresh_file, "refresh-1\n").unwrap();
    let overrides = [
        ("FFRELAY__API__ACCESS_TOKEN", ""),
        ("FFRELAY__API__REFRESH_TOKEN", ""),
        (
            "FFRELAY__API__ACCESS_TOKEN_FILE",
            access_file.to_str().unwrap(),
        ),
        (
            "FFRELAY__API__REFRESH_TOKEN_FILE",
            refresh_file.to_str().unwrap(),
        ),
    ];
    let settings = settings(&db.path, "http://127.0.0.1:9/v1", &overrides);
    let outbox = db.open().await;
    let tokens = TokenStore::load(&settings.api, outbox).await.unwrap();
    let access = || async { tokens.access().await.map(|s| s.expose().to_owned()) };
    assert_eq!(access().await.as_deref(), Some("access-1"));

    std::fs::write(&access_file, "").unwrap();
    assert!(
        !tokens.reload_files().await,
        "an empty file changes nothing"
    );
    assert_eq!(access().await.as_deref(), Some("access-1"));

    std::fs::remove_file(&refresh_file).unwrap();
    std::fs::create_dir(&refresh_file).unwrap();
    std::fs::write(&access_file, "access-2\n").unwrap();
    assert!(
        !tokens.reload_files().await,
        "an unreadable file changes nothing"
    );
    assert_eq!(access().await.as_deref(), Some("access-1"));

    std::fs::remove_dir(&refresh_file).unwrap();
    std::fs::write(&refresh_file, "refresh-1\n").unwrap();
    assert!(
        tokens.reload_files().await,
        "valid files replace the tokens"
    );
    assert_eq!(access().await.as_deref(), Some("access-2"));
}
