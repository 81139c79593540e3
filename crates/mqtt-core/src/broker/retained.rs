//! The retained-message store: the last retained message of each topic, bounded in count.
//!
//! Messages sit in a trie keyed by topic level, so that a new subscription visits only the
//! branches its filter can match: a filter without wildcards is a direct lookup, `a/+/c`
//! walks the children of `a`, and `#` walks one subtree. The store is generic over the
//! message so the broker chooses what it keeps (and the expiry it checks in
//! [`Retained::retain`]).
//!
//! Levels are kept in B-trees, so wildcard visits come out in topic order, the same on every
//! run. Walks are recursive; their depth is the number of levels of the deepest topic held,
//! which the broker bounds with `Limits::max_topic_levels`.

use core::str::Split;
use std::collections::BTreeMap;

use crate::topic::{TopicFilter, TopicName};

/// Retained messages by topic, at most `max` topics.
#[derive(Debug)]
pub(crate) struct Retained<T> {
    /// The node before the first level; it never holds a message itself, since every topic
    /// has one level or more.
    root: Node<T>,
    /// How many topics hold a message.
    len: usize,
    /// How many topics may hold one (`Limits::max_retained_messages`).
    max: usize,
}

impl<T> Retained<T> {
    /// An empty store that holds messages for at most `max` topics.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            root: Node::default(),
            len: 0,
            max,
        }
    }

    /// Stores `msg` as the retained message of `topic`, replacing the one there
    /// [MQTT-3.3.1-5].
    ///
    /// Returns `false`, and stores nothing, when `topic` has no message yet and the store
    /// already holds its maximum; replacing is always possible.
    pub(crate) fn set(&mut self, topic: &TopicName, msg: T) -> bool {
        let existing = find_mut(&mut self.root, topic.levels()).and_then(|n| n.message.as_mut());
        if let Some(slot) = existing {
            // The new name too: the old one may be a slice of the packet being replaced,
            // which then can be freed.
            *slot = (topic.clone(), msg);
            return true;
        }
        if self.len >= self.max {
            return false;
        }
        let mut node = &mut self.root;
        for level in topic.levels() {
            // Keys are copied, not sliced from the topic, so that a level shared by many
            // topics does not keep one PUBLISH packet alive for good.
            node = node.children.entry(Box::from(level)).or_default();
        }
        node.message = Some((topic.clone(), msg));
        self.len += 1;
        true
    }

    /// Removes the retained message of `topic` and returns it, pruning the levels left
    /// empty. A retained PUBLISH with an empty payload does this [MQTT-3.3.1-6].
    pub(crate) fn clear(&mut self, topic: &TopicName) -> Option<T> {
        let removed = clear_in(&mut self.root, topic.levels());
        if removed.is_some() {
            self.len = self.len.saturating_sub(1);
        }
        removed
    }

    /// The retained message of `topic`, if there is one.
    pub(crate) fn get(&self, topic: &str) -> Option<&T> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref().map(|(_, msg)| msg)
    }

    /// How many topics hold a retained message.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` for every retained message whose topic matches `filter`, in topic order
    /// level by level. For a shared subscription the inner filter is the one matched.
    ///
    /// Filters starting with `+` or `#` do not match topics starting with `$`
    /// [MQTT-4.7.2-1]; `a/#` matches `a`.
    pub(crate) fn for_each_match(&self, filter: &TopicFilter, f: &mut dyn FnMut(&TopicName, &T)) {
        visit(&self.root, filter.matching_filter().split('/'), true, f);
    }

    /// Removes every message for which `keep` returns `false` (expired ones), pruning the
    /// levels left empty.
    pub(crate) fn retain(&mut self, keep: &mut dyn FnMut(&TopicName, &T) -> bool) {
        let removed = retain_in(&mut self.root, keep);
        self.len = self.len.saturating_sub(removed);
    }

    /// How many nodes hang below the root, to check that clearing prunes.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.count_below()
    }
}

/// One level of the trie.
#[derive(Debug)]
struct Node<T> {
    /// The next levels of the topics held.
    children: BTreeMap<Box<str>, Self>,
    /// The message of the topic that ends here, with that topic.
    message: Option<(TopicName, T)>,
}

// By hand: a derive would require `T: Default`.
impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            children: BTreeMap::new(),
            message: None,
        }
    }
}

impl<T> Node<T> {
    /// Whether the node holds nothing and leads nowhere, so its parent can drop it.
    fn is_empty(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }

    /// Calls `f` with this node's message, if it has one.
    fn emit(&self, f: &mut dyn FnMut(&TopicName, &T)) {
        if let Some((topic, msg)) = &self.message {
            f(topic, msg);
        }
    }

    #[cfg(test)]
    fn count_below(&self) -> usize {
        self.children.values().map(|c| 1 + c.count_below()).sum()
    }
}

/// The node at the end of `levels`, if the trie has it.
fn find_mut<'a, T>(mut node: &'a mut Node<T>, levels: Split<'_, char>) -> Option<&'a mut Node<T>> {
    for level in levels {
        node = node.children.get_mut(level)?;
    }
    Some(node)
}

/// Takes the message at the end of `levels` and prunes the nodes left empty on the way up.
fn clear_in<T>(node: &mut Node<T>, mut levels: Split<'_, char>) -> Option<T> {
    let Some(level) = levels.next() else {
        return node.message.take().map(|(_, msg)| msg);
    };
    let child = node.children.get_mut(level)?;
    let removed = clear_in(child, levels)?;
    if child.is_empty() {
        node.children.remove(level);
    }
    Some(removed)
}

/// Calls `f` for the messages below `node` that the rest of a filter, `levels`, matches.
fn visit<T>(
    node: &Node<T>,
    mut levels: Split<'_, char>,
    root: bool,
    f: &mut dyn FnMut(&TopicName, &T),
) {
    let Some(level) = levels.next() else {
        node.emit(f);
        return;
    };
    match level {
        // A valid filter has `#` only as its last level [MQTT-4.7.1-1].
        "#" => visit_all(node, root, f),
        "+" => {
            for (key, child) in &node.children {
                // [MQTT-4.7.2-1]
                if root && key.starts_with('$') {
                    continue;
                }
                visit(child, levels.clone(), false, f);
            }
        }
        _ => {
            if let Some(child) = node.children.get(level) {
                visit(child, levels, false, f);
            }
        }
    }
}

/// Calls `f` for the message of `node` (`a/#` matches `a`) and every message below it.
fn visit_all<T>(node: &Node<T>, root: bool, f: &mut dyn FnMut(&TopicName, &T)) {
    node.emit(f);
    for (key, child) in &node.children {
        // [MQTT-4.7.2-1]: `#` alone does not reach `$SYS/...` and the like.
        if root && key.starts_with('$') {
            continue;
        }
        visit_all(child, false, f);
    }
}

/// Drops the messages below `node` that `keep` refuses, and the nodes left empty; returns
/// how many messages were dropped.
fn retain_in<T>(node: &mut Node<T>, keep: &mut dyn FnMut(&TopicName, &T) -> bool) -> usize {
    let mut removed = 0;
    let drop = node
        .message
        .as_ref()
        .is_some_and(|(topic, msg)| !keep(topic, msg));
    if drop {
        node.message = None;
        removed += 1;
    }
    node.children.retain(|_, child| {
        removed += retain_in(child, keep);
        !child.is_empty()
    });
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    /// The topics matched by `f`, in the order visited, checking each message is its own.
    fn matched(store: &Retained<String>, f: &str) -> Vec<String> {
        let mut got = Vec::new();
        store.for_each_match(&filter(f), &mut |t, msg| {
            assert_eq!(t.as_str(), msg);
            got.push(msg.clone());
        });
        got
    }

    fn store_of(topics: &[&str]) -> Retained<String> {
        let mut store = Retained::new(100);
        for t in topics {
            assert!(store.set(&topic(t), t.to_string()));
        }
        store
    }

    #[test]
    fn set_replace_clear() {
        let mut store = Retained::new(10);
        assert!(store.is_empty());
        assert!(store.set(&topic("a/b"), 1));
        assert!(store.set(&topic("a"), 2));
        assert_eq!(store.get("a/b"), Some(&1));
        assert_eq!(store.get("a"), Some(&2));
        assert_eq!(store.get("a/b/c"), None);
        assert_eq!(store.get(""), None);
        // [MQTT-3.3.1-5]
        assert!(store.set(&topic("a/b"), 3));
        assert_eq!(store.get("a/b"), Some(&3));
        assert_eq!(store.len(), 2);
        // [MQTT-3.3.1-6]
        assert_eq!(store.clear(&topic("a/b")), Some(3));
        assert_eq!(store.clear(&topic("a/b")), None);
        assert_eq!(store.clear(&topic("a/b/c")), None);
        assert_eq!(store.get("a/b"), None);
        assert_eq!(store.get("a"), Some(&2));
        assert_eq!(store.len(), 1);
        assert_eq!(store.clear(&topic("a")), Some(2));
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 0);
    }

    #[test]
    fn clearing_a_parent_keeps_its_children() {
        let mut store = store_of(&["a", "a/b/c", "/", "//x"]);
        assert_eq!(store.clear(&topic("a")).as_deref(), Some("a"));
        assert_eq!(store.get("a/b/c").map(String::as_str), Some("a/b/c"));
        assert_eq!(store.node_count(), 3 + 3);
        store.clear(&topic("a/b/c"));
        store.clear(&topic("//x"));
        assert_eq!(store.node_count(), 2, "`/` is two empty levels");
        store.clear(&topic("/"));
        assert_eq!(store.node_count(), 0);
    }

    #[test]
    fn max_bounds_new_topics_only() {
        let mut store = Retained::new(2);
        assert!(store.set(&topic("a"), 1));
        assert!(store.set(&topic("b"), 2));
        assert!(!store.set(&topic("c"), 3));
        assert_eq!(store.get("c"), None);
        assert_eq!(
            store.node_count(),
            2,
            "a refused topic leaves no node behind"
        );
        assert!(store.set(&topic("a"), 4), "replacing needs no room");
        assert_eq!(store.get("a"), Some(&4));
        store.clear(&topic("b"));
        assert!(store.set(&topic("c"), 3));
        assert_eq!(store.len(), 2);

        let mut none = Retained::new(0);
        assert!(!none.set(&topic("a"), ()));
        assert!(none.is_empty());
    }

    #[test]
    fn wildcard_matching() {
        let store = store_of(&[
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/golf",
            "sport/",
            "/finance",
            "$SYS/broker/uptime",
            "$SYS",
            "a/$SYS",
        ]);
        assert_eq!(matched(&store, "sport/tennis"), ["sport/tennis"]);
        assert!(matched(&store, "sport/tennis/player2").is_empty());
        assert_eq!(
            matched(&store, "sport/#"),
            [
                "sport",
                "sport/",
                "sport/golf",
                "sport/tennis",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking"
            ]
        );
        assert_eq!(
            matched(&store, "sport/tennis/player1/#"),
            ["sport/tennis/player1", "sport/tennis/player1/ranking"]
        );
        assert_eq!(
            matched(&store, "sport/+"),
            ["sport/", "sport/golf", "sport/tennis"]
        );
        assert_eq!(
            matched(&store, "+/+"),
            ["/finance", "a/$SYS", "sport/", "sport/golf", "sport/tennis"]
        );
        assert_eq!(matched(&store, "+"), ["sport"]);
        assert_eq!(matched(&store, "/+"), ["/finance"]);
        assert_eq!(
            matched(&store, "+/tennis/#"),
            [
                "sport/tennis",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking"
            ]
        );
        // [MQTT-4.7.2-1]
        assert!(!matched(&store, "#").iter().any(|t| t.starts_with('$')));
        assert_eq!(matched(&store, "#").len(), 8);
        assert!(matched(&store, "+/broker/#").is_empty());
        assert_eq!(matched(&store, "$SYS/#"), ["$SYS", "$SYS/broker/uptime"]);
        assert_eq!(matched(&store, "$SYS/+/uptime"), ["$SYS/broker/uptime"]);
        assert_eq!(
            matched(&store, "$share/g/sport/+/player1"),
            ["sport/tennis/player1"]
        );
        assert!(matched(&store, "$share/g/#")
            .iter()
            .all(|t| !t.starts_with('$')));
    }

    #[test]
    fn retain_drops_refused_and_prunes() {
        let mut store = store_of(&["a", "a/b", "a/b/c", "x/y", "$SYS/z"]);
        store.retain(&mut |t, _| t.len() != 3);
        assert_eq!(store.len(), 3);
        assert_eq!(store.get("a/b"), None);
        assert_eq!(store.get("x/y"), None);
        assert_eq!(matched(&store, "#"), ["a", "a/b/c"]);
        store.retain(&mut |_, _| false);
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 0);
    }

    /// One operation of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Set(String, u8),
        Clear(String),
        Retain(u8),
    }

    const LEVELS: &[&str] = &["a", "b", "$x", ""];

    fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(LEVELS), 1..5)
            .prop_map(|l| l.join("/"))
            .prop_filter("a topic is not empty", |t| !t.is_empty())
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(&["a", "b", "$x", "", "+", "+"][..]);
        let share = prop::sample::select(&["", "", "$share/g/"][..]);
        (prop::collection::vec(level, 1..5), any::<bool>(), share)
            .prop_map(|(mut levels, hash, share)| {
                if hash {
                    levels.push("#");
                }
                format!("{share}{}", levels.join("/"))
            })
            .prop_filter("a filter is not empty", |f| {
                TopicFilter::new(f.as_str()).is_ok()
            })
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (topic_strategy(), any::<u8>()).prop_map(|(t, v)| Op::Set(t, v)),
            2 => topic_strategy().prop_map(Op::Clear),
            1 => (0u8..4).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #[test]
        fn store_agrees_with_naive_model(
            max in 0usize..12,
            ops in prop::collection::vec(op_strategy(), 0..60),
            filters in prop::collection::vec(filter_strategy(), 1..8),
        ) {
            let mut store = Retained::new(max);
            let mut model: HashMap<String, u8> = HashMap::new();
            for op in ops {
                match op {
                    Op::Set(t, v) => {
                        let stored = model.contains_key(&t) || model.len() < max;
                        if stored {
                            model.insert(t.clone(), v);
                        }
                        prop_assert_eq!(store.set(&topic(&t), v), stored);
                    }
                    Op::Clear(t) => {
                        prop_assert_eq!(store.clear(&topic(&t)), model.remove(&t));
                    }
                    Op::Retain(m) => {
                        model.retain(|_, v| *v % 4 != m);
                        store.retain(&mut |_, v| *v % 4 != m);
                    }
                }
                prop_assert_eq!(store.len(), model.len());
            }
            for (t, v) in &model {
                prop_assert_eq!(store.get(t), Some(v));
            }
            for f in &filters {
                let tf = filter(f);
                let mut got = Vec::new();
                store.for_each_match(&tf, &mut |t, v| got.push((t.to_string(), *v)));
                let mut expected: Vec<(String, u8)> = model
                    .iter()
                    .filter(|(t, _)| matches(tf.matching_filter(), t))
                    .map(|(t, v)| (t.clone(), *v))
                    .collect();
                expected.sort();
                let mut sorted = got.clone();
                sorted.sort();
                prop_assert_eq!(sorted, expected);
            }
            let topics: Vec<String> = model.keys().cloned().collect();
            for t in topics {
                prop_assert!(store.clear(&topic(&t)).is_some());
            }
            prop_assert!(store.is_empty());
            prop_assert_eq!(store.node_count(), 0);
        }
    }
}
