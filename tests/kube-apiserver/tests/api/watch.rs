//! kube-runtime's watcher and reflector against the loopback apiserver's watch streams.

use crate::common::{bounded, eventually, start};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({ "metadata": { "name": name, "labels": { "app": "w" } }, "data": { "v": value } }),
    )
    .unwrap()
}

#[tokio::test]
async fn watcher_and_reflector_see_add_modify_delete() {
    let (_server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        cms.create(&PostParams::default(), &config_map("before", "1"))
            .await
            .unwrap();

        let (reader, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(cms.clone(), watcher::Config::default().labels("app=w")),
        )
        .applied_objects()
        .boxed();
        // Keep the reflector running for the whole test; report what it applies.
        let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            let mut stream = stream;
            while let Some(Ok(cm)) = stream.next().await {
                let _ = tx.send((
                    cm.metadata.name.clone().unwrap(),
                    cm.data.clone().unwrap_or_default().get("v").cloned(),
                ));
            }
        });
        reader.wait_until_ready().await.unwrap();
        assert_eq!(reader.state().len(), 1);
        cms.create(&PostParams::default(), &config_map("after", "1"))
            .await
            .unwrap();
        cms.patch(
            "after",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "v": "2" } })),
        )
        .await
        .unwrap();
        let mut names = Vec::new();
        while names.len() < 3 {
            names.push(seen.recv().await.unwrap());
        }
        assert_eq!(names[0].0, "before");
        assert_eq!(names[1], ("after".to_string(), Some("1".to_string())));
        assert_eq!(names[2], ("after".to_string(), Some("2".to_string())));

        cms.delete("before", &DeleteParams::default())
            .await
            .unwrap();
        eventually(|| {
            (reader.state().len() == 1
                && reader.state()[0].metadata.name.as_deref() == Some("after"))
            .then_some(())
        })
        .await;
        pump.abort();
    })
    .await;
}

#[tokio::test]
async fn streaming_list_initial_events() {
    let (_server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        cms.create(&PostParams::default(), &config_map("one", "1"))
            .await
            .unwrap();
        let mut events = watcher(cms, watcher::Config::default().streaming_lists()).boxed();
        let mut got_init_done = false;
        while let Some(event) = events.next().await {
            if let watcher::Event::InitDone = event.unwrap() {
                got_init_done = true;
                break;
            }
        }
        assert!(got_init_done);
    })
    .await;
}

#[tokio::test]
async fn expired_resource_version_makes_the_watcher_relist() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        cms.create(&PostParams::default(), &config_map("a", "1"))
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut events = watcher(cms, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let label = match event {
                    Ok(watcher::Event::Init) => "init".to_string(),
                    Ok(watcher::Event::InitDone) => "init-done".to_string(),
                    Ok(_) => "event".to_string(),
                    Err(e) => format!("error: {e}"),
                };
                if tx.send(label).is_err() {
                    return;
                }
            }
        });
        let mut log = Vec::new();
        while !log.contains(&"init-done".to_string()) {
            log.push(rx.recv().await.unwrap());
        }
        // Wait until the watch is established, then move the clock past its resourceVersion on
        // another kind, compact, and cut the stream: resuming must hit 410 and relist.
        eventually(|| {
            server
                .request_log()
                .iter()
                .any(|r| r.is_watch() && r.resource == "configmaps")
                .then_some(())
        })
        .await;
        let secret: Secret =
            serde_json::from_value(json!({ "metadata": { "name": "s" } })).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        server.compact_history();
        server.drop_watches();
        let mut after = Vec::new();
        while after.iter().filter(|l: &&String| *l == "init-done").count() < 1 {
            after.push(rx.recv().await.unwrap());
        }
        assert!(
            after
                .iter()
                .any(|l| l.contains("410") || l.to_lowercase().contains("expired")),
            "{after:?}"
        );
        assert!(after.contains(&"init".to_string()), "relisted: {after:?}");
        let lists = server
            .request_log()
            .iter()
            .filter(|r| r.verb == "list" && r.resource == "configmaps")
            .count();
        assert!(lists >= 2, "the watcher listed again");
        task.abort();
    })
    .await;
}
