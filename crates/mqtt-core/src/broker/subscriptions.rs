//! The subscription trie: which clients a message on a topic goes to, ordinary and shared.
//!
//! Filters are stored one level per trie node, so routing a PUBLISH follows the topic's
//! levels once (plus the `+` branches that exist) instead of testing every filter held.
//! Each node keeps the subscriptions whose filter ends there (`a/b`) and, apart, those whose
//! filter ends with a `#` just below it (`a/b/#`), since the latter also match every longer
//! topic. Shared subscriptions `$share/{group}/{filter}` live in the same trie under their
//! inner filter, grouped by ShareName (MQTT 5.0 section 4.8.2).
//!
//! Output is deterministic: routes come out sorted by client id (ordinary ones first, then the
//! shared ones), so a seeded simulation replays the same way. Walks are recursive; their
//! depth is the number of levels of the deepest filter held, which the broker bounds with
//! `Limits::max_topic_levels`.

use core::cmp::Ordering;
use core::mem;
use core::num::NonZeroU32;
use core::str::Split;
use std::collections::{BTreeMap, HashMap};

use bytestring::ByteString;

use crate::packet::{QoS, SubscriptionOptions};
use crate::topic::{TopicFilter, TopicName};

/// One client's subscription to one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubEntry {
    /// The options the client subscribed with (QoS already capped by the broker).
    pub(crate) options: SubscriptionOptions,
    /// The Subscription Identifier of the SUBSCRIBE that made it (5.0), if any.
    pub(crate) id: Option<NonZeroU32>,
}

/// Where one message goes: one per client for its ordinary subscriptions (overlaps merged),
/// and one per matching shared subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The client (session) to deliver to.
    pub(crate) client: ByteString,
    /// The highest QoS granted among the merged subscriptions.
    pub(crate) qos: QoS,
    /// Whether any merged subscription asked for Retain As Published.
    pub(crate) retain_as_published: bool,
    /// Every Subscription Identifier of the merged subscriptions, deduplicated, in no
    /// particular order: in 5.0 the one copy sent carries them all.
    pub(crate) sub_ids: Vec<NonZeroU32>,
    /// Whether this delivery is for a shared subscription (never merged with others).
    pub(crate) shared: bool,
}

/// Every subscription of every session, in a trie keyed by topic level.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// The node before the first level; it holds the filters `#` (in `multi`) and nothing in
    /// `exact`, since every filter has one level or more.
    root: Node,
    /// How many (client, filter) subscriptions are held, shared ones included.
    len: usize,
}

impl Subscriptions {
    /// An empty set of subscriptions.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds the subscription of `client` to `filter`, or replaces the one it already has to
    /// the very same filter string [MQTT-3.8.4-3]; returns the entry replaced.
    pub(crate) fn insert(
        &mut self,
        client: &ByteString,
        filter: &TopicFilter,
        entry: SubEntry,
    ) -> Option<SubEntry> {
        let (group, inner) = split_shared(filter);
        let mut node = &mut self.root;
        let mut multi = false;
        for level in inner.split('/') {
            match level {
                // A valid filter has `#` only as its last level [MQTT-4.7.1-1].
                "#" => {
                    multi = true;
                    break;
                }
                "+" => node = &mut **node.plus.get_or_insert_with(Box::default),
                // Keys are copied, not sliced from the filter: a slice would keep the whole
                // SUBSCRIBE packet it was decoded from alive for as long as the subscription.
                _ => node = node.children.entry(Box::from(level)).or_default(),
            }
        }
        let subs = if multi {
            &mut node.multi
        } else {
            &mut node.exact
        };
        let previous = subs.insert(client, group, entry);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes the subscription of `client` to `filter` (the same filter string it
    /// subscribed with), pruning the nodes it leaves empty; returns it.
    pub(crate) fn remove(&mut self, client: &ByteString, filter: &TopicFilter) -> Option<SubEntry> {
        let (group, inner) = split_shared(filter);
        let removed = remove_in(&mut self.root, inner.split('/'), client, group);
        if removed.is_some() {
            self.len = self.len.saturating_sub(1);
        }
        removed
    }

    /// The number of (client, filter) subscriptions held, shared ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no subscription is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends to `out` where a message on `topic` published by `publisher` goes.
    ///
    /// Ordinary subscriptions give one [`Route`] per client, however many of its filters
    /// match: the highest QoS, Retain As Published if any asks for it, and all their
    /// Subscription Identifiers. A subscription with No Local is skipped when its client is
    /// `publisher` [MQTT-3.8.3-3].
    ///
    /// For each shared subscription (group and filter) that matches, one member is chosen by
    /// `pick(members)`, which gets the members sorted by client id and returns an index into
    /// them; an index out of range means nobody gets it. The chosen member gets its own route
    /// with `shared` set. No Local is not looked at for shared subscriptions: it is a Protocol
    /// Error to ask for it on one [MQTT-3.8.3-4], which the broker refuses at SUBSCRIBE.
    ///
    /// Filters starting with `+` or `#` do not match topics starting with `$`
    /// [MQTT-4.7.2-1]; `a/#` matches `a`.
    ///
    /// Allocates only for what it appends: the routes, and their identifiers.
    pub(crate) fn route(
        &self,
        topic: &TopicName,
        publisher: Option<&ByteString>,
        pick: &mut dyn FnMut(&[ByteString]) -> usize,
        out: &mut Vec<Route>,
    ) {
        let start = out.len();
        let mut walk = Walk {
            publisher,
            pick,
            start,
            out,
            sorted: true,
        };
        walk.node(&self.root, topic.levels(), true);
        let sorted = walk.sorted;
        merge_tail(out, start, sorted);
    }

    /// How many nodes hang below the root, to check that removing prunes.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.root.count_below()
    }
}

/// One level of the trie.
#[derive(Debug, Default)]
struct Node {
    /// The next levels spelled out in the filters. A hash map is fine here (and faster than a
    /// B-tree with thousands of siblings such as `dev/{id}`): routing only looks levels up,
    /// so its arbitrary iteration order never reaches the output.
    children: HashMap<Box<str>, Self, ahash::RandomState>,
    /// The next level when it is `+`.
    plus: Option<Box<Self>>,
    /// Subscriptions whose filter ends at this level.
    exact: Subs,
    /// Subscriptions whose filter ends with a `#` just below this level.
    multi: Subs,
}

impl Node {
    /// Whether the node holds nothing and leads nowhere, so its parent can drop it.
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.multi.is_empty()
    }

    #[cfg(test)]
    fn count_below(&self) -> usize {
        let children: usize = self.children.values().map(|c| 1 + c.count_below()).sum();
        children + self.plus.as_ref().map_or(0, |p| 1 + p.count_below())
    }
}

/// The subscriptions that end at one place in the trie.
///
/// B-trees rather than hash maps: they iterate in client order (deterministic output, and
/// sorted runs that [`Walk::settle`] merges without a full sort) and do not rehash under
/// churn.
#[derive(Debug, Default)]
struct Subs {
    /// Ordinary subscriptions, by client.
    clients: BTreeMap<ByteString, SubEntry>,
    /// Shared subscriptions, by ShareName.
    groups: BTreeMap<Box<str>, Group>,
}

impl Subs {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.groups.is_empty()
    }

    fn insert(
        &mut self,
        client: &ByteString,
        group: Option<&str>,
        entry: SubEntry,
    ) -> Option<SubEntry> {
        let Some(name) = group else {
            return self.clients.insert(client.clone(), entry);
        };
        if let Some(group) = self.groups.get_mut(name) {
            return group.insert(client, entry);
        }
        let mut group = Group::default();
        group.insert(client, entry);
        self.groups.insert(Box::from(name), group);
        None
    }

    fn remove(&mut self, client: &ByteString, group: Option<&str>) -> Option<SubEntry> {
        let Some(name) = group else {
            return self.clients.remove(client);
        };
        let members = self.groups.get_mut(name)?;
        let removed = members.remove(client)?;
        if members.clients.is_empty() {
            self.groups.remove(name);
        }
        Some(removed)
    }
}

/// The members of one shared subscription (one ShareName and one filter).
///
/// Two parallel vectors sorted by client id, so that `pick` gets the ids as a slice without
/// anything being built per message.
#[derive(Debug, Default)]
struct Group {
    /// Client ids, sorted.
    clients: Vec<ByteString>,
    /// `entries[i]` is the subscription of `clients[i]`.
    entries: Vec<SubEntry>,
}

impl Group {
    fn insert(&mut self, client: &ByteString, entry: SubEntry) -> Option<SubEntry> {
        match self.clients.binary_search(client) {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|slot| mem::replace(slot, entry)),
            Err(i) => {
                // invariant: both vectors have the same length and `i <= len`, as
                // `binary_search` returns.
                self.clients.insert(i, client.clone());
                self.entries.insert(i, entry);
                None
            }
        }
    }

    fn remove(&mut self, client: &ByteString) -> Option<SubEntry> {
        let i = self.clients.binary_search(client).ok()?;
        if i >= self.entries.len() {
            return None;
        }
        self.clients.remove(i);
        Some(self.entries.remove(i))
    }
}

/// The state of one [`Subscriptions::route`] walk.
struct Walk<'a> {
    publisher: Option<&'a ByteString>,
    pick: &'a mut dyn FnMut(&[ByteString]) -> usize,
    /// Where this walk's routes begin in `out`.
    start: usize,
    out: &'a mut Vec<Route>,
    /// Whether `out[start..]` is in [`route_order`]: each run of routes collected is merged
    /// into the ones before it while that is cheap, and otherwise this is cleared so that
    /// `merge_tail` sorts once at the end.
    sorted: bool,
}

impl Walk<'_> {
    /// Collects what matches the rest of the topic, `levels`, from `node`.
    fn node(&mut self, node: &Node, mut levels: Split<'_, char>, root: bool) {
        let Some(level) = levels.next() else {
            // The topic ends here: filters ending here match, and so do those ending with
            // `#` just below, since `#` also matches its parent level (`a/#` matches `a`).
            self.collect(&node.exact);
            self.collect(&node.multi);
            return;
        };
        // [MQTT-4.7.2-1]: a wildcard as the first level never matches a `$` topic.
        let wildcards = !(root && level.starts_with('$'));
        if wildcards {
            self.collect(&node.multi);
        }
        if let Some(child) = node.children.get(level) {
            self.node(child, levels.clone(), false);
        }
        if wildcards {
            if let Some(plus) = &node.plus {
                self.node(plus, levels, false);
            }
        }
    }

    fn collect(&mut self, subs: &Subs) {
        // The B-tree hands out one client-sorted run.
        let run = self.out.len();
        for (client, entry) in &subs.clients {
            // [MQTT-3.8.3-3]: No Local keeps a client's own messages from coming back.
            if entry.options.no_local && self.publisher == Some(client) {
                continue;
            }
            self.push(client, entry, false);
        }
        self.settle(run);
        for group in subs.groups.values() {
            // MQTT 5.0 section 4.8.2: each message goes to one member of the group only.
            let chosen = (self.pick)(&group.clients);
            if let (Some(client), Some(entry)) =
                (group.clients.get(chosen), group.entries.get(chosen))
            {
                let run = self.out.len();
                self.push(client, entry, true);
                self.settle(run);
            }
        }
    }

    fn push(&mut self, client: &ByteString, entry: &SubEntry, shared: bool) {
        self.out.push(Route {
            client: client.clone(),
            qos: entry.options.qos,
            retain_as_published: entry.options.retain_as_published,
            sub_ids: entry.id.into_iter().collect(),
            shared,
        });
    }

    /// Merges the sorted run `out[run..]` into the sorted routes before it, when one of the
    /// two is short enough for moving its routes one by one to beat a sort of the whole:
    /// the usual overlap is a few specific subscriptions beside one broad one.
    fn settle(&mut self, run: usize) {
        if !self.sorted {
            return;
        }
        let Some(tail) = self.out.get_mut(self.start..) else {
            return;
        };
        let Some(mid) = run.checked_sub(self.start) else {
            return;
        };
        let (Some(before), Some(first)) =
            (mid.checked_sub(1).and_then(|i| tail.get(i)), tail.get(mid))
        else {
            // One side is empty: nothing to merge.
            return;
        };
        if route_order(before, first).is_le() {
            return;
        }
        let len = tail.len();
        if len - mid <= SHORT_RUN {
            // Each route of the run goes down to its place among those before it, which
            // are sorted (the run's earlier routes included, as they were placed first).
            for i in mid..len {
                let Some(route) = tail.get(i) else {
                    break;
                };
                let at = tail.get(..i).map_or(i, |done| {
                    done.partition_point(|r| route_order(r, route).is_le())
                });
                if let Some(span) = tail.get_mut(at..=i) {
                    span.rotate_right(1);
                }
            }
        } else if mid <= SHORT_RUN {
            // The same the other way: the routes before the run go up into it, last first.
            for i in (0..mid).rev() {
                let Some(route) = tail.get(i) else {
                    break;
                };
                let below = tail.get(i + 1..).map_or(0, |rest| {
                    rest.partition_point(|r| route_order(r, route).is_lt())
                });
                if let Some(span) = tail.get_mut(i..=i + below) {
                    span.rotate_left(1);
                }
            }
        } else {
            self.sorted = false;
        }
    }
}

/// The longest run of routes that [`Walk::settle`] moves one by one; longer runs on both
/// sides are left for one sort at the end.
const SHORT_RUN: usize = 8;

/// The order routes are merged and handed out in: ordinary before shared, then by client.
fn route_order(a: &Route, b: &Route) -> Ordering {
    a.shared
        .cmp(&b.shared)
        .then_with(|| a.client.cmp(&b.client))
}

/// Merges the ordinary routes of one client among `out[start..]` into one, in place.
fn merge_tail(out: &mut Vec<Route>, start: usize, sorted: bool) {
    let Some(tail) = out.get_mut(start..) else {
        return;
    };
    if !sorted {
        // Unstable: it does not allocate, and equal keys are merged anyway.
        tail.sort_unstable_by(route_order);
    }
    // Compact in place: `tail[..kept]` holds the routes kept so far, each distinct.
    let mut kept: usize = 0;
    let mut merged = false;
    for i in 0..tail.len() {
        let (done, rest) = tail.split_at_mut(i);
        let Some(current) = rest.first_mut() else {
            break;
        };
        if let Some(last) = kept.checked_sub(1).and_then(|k| done.get_mut(k)) {
            if !last.shared && !current.shared && last.client == current.client {
                last.qos = last.qos.max(current.qos);
                last.retain_as_published |= current.retain_as_published;
                last.sub_ids.append(&mut current.sub_ids);
                merged = true;
                continue;
            }
        }
        // `kept <= i`: moves the route down over the ones merged away.
        tail.swap(kept, i);
        kept += 1;
    }
    if merged {
        for route in tail.iter_mut().take(kept) {
            if route.sub_ids.len() > 1 {
                route.sub_ids.sort_unstable();
                route.sub_ids.dedup();
            }
        }
    }
    out.truncate(start.saturating_add(kept));
}

/// Removes a subscription below `node` and prunes the nodes left empty on the way back up.
fn remove_in(
    node: &mut Node,
    mut levels: Split<'_, char>,
    client: &ByteString,
    group: Option<&str>,
) -> Option<SubEntry> {
    let Some(level) = levels.next() else {
        return node.exact.remove(client, group);
    };
    match level {
        "#" => node.multi.remove(client, group),
        "+" => {
            let child = node.plus.as_deref_mut()?;
            let removed = remove_in(child, levels, client, group)?;
            if child.is_empty() {
                node.plus = None;
            }
            Some(removed)
        }
        _ => {
            let child = node.children.get_mut(level)?;
            let removed = remove_in(child, levels, client, group)?;
            if child.is_empty() {
                node.children.remove(level);
                // A hash map never gives memory back by itself: after a wave of
                // unsubscribes, a level that once had many children would stay large.
                if node.children.len().saturating_mul(4) < node.children.capacity() {
                    node.children.shrink_to_fit();
                }
            }
            Some(removed)
        }
    }
}

/// The ShareName (for a shared subscription) and the filter matched against topics.
fn split_shared(filter: &TopicFilter) -> (Option<&str>, &str) {
    match filter.shared() {
        Some(shared) => (Some(shared.group), shared.filter),
        None => (None, filter.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    fn bs(s: &str) -> ByteString {
        ByteString::from(s)
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    fn entry(qos: QoS) -> SubEntry {
        SubEntry {
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            id: None,
        }
    }

    fn id(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn route_all(subs: &Subscriptions, t: &str, publisher: Option<&str>) -> Vec<Route> {
        let mut out = Vec::new();
        let publisher = publisher.map(bs);
        subs.route(&topic(t), publisher.as_ref(), &mut |_| 0, &mut out);
        out
    }

    /// The clients an ordinary route reaches, in output order.
    fn clients(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|r| r.client.as_ref()).collect()
    }

    /// Subscribes one client per filter, named after it, and returns who gets `t`.
    fn who_gets(filters: &[&str], t: &str) -> Vec<String> {
        let mut subs = Subscriptions::new();
        for f in filters {
            subs.insert(&bs(f), &filter(f), entry(QoS::AtMostOnce));
        }
        let mut got: Vec<String> = route_all(&subs, t, None)
            .iter()
            .map(|r| r.client.to_string())
            .collect();
        got.sort();
        got
    }

    #[test]
    fn spec_examples() {
        // Section 4.7.1.2.
        let f = ["sport/tennis/player1/#"];
        assert_eq!(who_gets(&f, "sport/tennis/player1"), f);
        assert_eq!(who_gets(&f, "sport/tennis/player1/ranking"), f);
        assert_eq!(who_gets(&f, "sport/tennis/player1/score/wimbledon"), f);
        assert_eq!(who_gets(&["sport/#"], "sport"), ["sport/#"]);
        // Section 4.7.1.3.
        let f = ["sport/tennis/+"];
        assert_eq!(who_gets(&f, "sport/tennis/player1"), f);
        assert_eq!(who_gets(&f, "sport/tennis/player2"), f);
        assert!(who_gets(&f, "sport/tennis/player1/ranking").is_empty());
        assert!(who_gets(&["sport/+"], "sport").is_empty());
        assert_eq!(who_gets(&["sport/+"], "sport/"), ["sport/+"]);
        assert_eq!(who_gets(&["+/+"], "/finance"), ["+/+"]);
        assert_eq!(who_gets(&["/+"], "/finance"), ["/+"]);
        assert!(who_gets(&["+"], "/finance").is_empty());
        // Everything at once, with some that must not match.
        let all = [
            "#",
            "+/+",
            "+/tennis/#",
            "sport/#",
            "sport/tennis",
            "sport/tennis/#",
            "sport/+/player1",
            "sport/tennis/player1/#",
            "Sport/tennis",
            "sport/tennis/+/x",
        ];
        assert_eq!(
            who_gets(&all, "sport/tennis"),
            [
                "#",
                "+/+",
                "+/tennis/#",
                "sport/#",
                "sport/tennis",
                "sport/tennis/#"
            ]
        );
    }

    #[test]
    fn dollar_topics_need_a_literal_first_level() {
        // [MQTT-4.7.2-1]
        let filters = ["#", "+/monitor/Clients", "+/#", "$SYS/#", "$SYS/monitor/+"];
        assert_eq!(
            who_gets(&filters, "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
        assert_eq!(who_gets(&["+/#", "#"], "a/$SYS"), ["#", "+/#"]);
        assert!(who_gets(&["$share/g/#", "$share/g/+"], "$SYS").is_empty());
        assert_eq!(who_gets(&["$share/g/$SYS"], "$SYS"), ["$share/g/$SYS"]);
    }

    #[test]
    fn overlapping_subscriptions_merge_per_client() {
        let mut subs = Subscriptions::new();
        let c = bs("c");
        let mut e = entry(QoS::AtLeastOnce);
        e.id = Some(id(1));
        subs.insert(&c, &filter("a/+"), e);
        let mut e = entry(QoS::ExactlyOnce);
        e.id = Some(id(2));
        subs.insert(&c, &filter("a/#"), e);
        let mut e = entry(QoS::AtMostOnce);
        e.options.retain_as_published = true;
        e.id = Some(id(2));
        subs.insert(&c, &filter("#"), e);
        subs.insert(&c, &filter("a/b/c"), entry(QoS::AtMostOnce));
        subs.insert(&bs("d"), &filter("a/b"), entry(QoS::AtMostOnce));

        let routes = route_all(&subs, "a/b", None);
        assert_eq!(clients(&routes), ["c", "d"]);
        let c_route = &routes[0];
        assert_eq!(c_route.qos, QoS::ExactlyOnce);
        assert!(c_route.retain_as_published);
        assert!(!c_route.shared);
        let ids: BTreeSet<_> = c_route.sub_ids.iter().copied().collect();
        assert_eq!(ids, BTreeSet::from([id(1), id(2)]));
        assert_eq!(c_route.sub_ids.len(), 2, "deduplicated");
        assert_eq!(routes[1].sub_ids, []);
        assert!(!routes[1].retain_as_published);
    }

    #[test]
    fn no_local_skips_only_the_publisher() {
        let mut subs = Subscriptions::new();
        let mut e = entry(QoS::AtLeastOnce);
        e.options.no_local = true;
        subs.insert(&bs("me"), &filter("t"), e.clone());
        subs.insert(&bs("other"), &filter("t"), e);
        subs.insert(&bs("me"), &filter("t/#"), entry(QoS::AtMostOnce));
        // [MQTT-3.8.3-3]: the No Local subscription is skipped, the other one of the same
        // client still delivers.
        let routes = route_all(&subs, "t", Some("me"));
        assert_eq!(clients(&routes), ["me", "other"]);
        assert_eq!(routes[0].qos, QoS::AtMostOnce);
        assert_eq!(clients(&route_all(&subs, "t", None)), ["me", "other"]);
        assert_eq!(route_all(&subs, "t", None)[0].qos, QoS::AtLeastOnce);
        subs.remove(&bs("me"), &filter("t/#"));
        assert_eq!(clients(&route_all(&subs, "t", Some("me"))), ["other"]);
    }

    #[test]
    fn shared_group_delivers_to_one_member() {
        let mut subs = Subscriptions::new();
        for c in ["c3", "c1", "c2"] {
            subs.insert(&bs(c), &filter("$share/g/a/+"), entry(QoS::AtLeastOnce));
        }
        let mut seen = Vec::new();
        for n in 0..3 {
            let mut out = Vec::new();
            subs.route(
                &topic("a/b"),
                None,
                &mut |members| {
                    // Sorted by client id, so the pick is deterministic.
                    assert_eq!(members, [bs("c1"), bs("c2"), bs("c3")]);
                    n
                },
                &mut out,
            );
            assert_eq!(out.len(), 1);
            assert!(out[0].shared);
            seen.push(out[0].client.to_string());
        }
        assert_eq!(seen, ["c1", "c2", "c3"]);
    }

    #[test]
    fn shared_groups_and_ordinary_subscriptions_each_deliver() {
        let mut subs = Subscriptions::new();
        let mut e = entry(QoS::ExactlyOnce);
        e.id = Some(id(7));
        subs.insert(&bs("x"), &filter("$share/g1/a/#"), e);
        subs.insert(&bs("y"), &filter("$share/g1/a/#"), entry(QoS::AtMostOnce));
        subs.insert(&bs("x"), &filter("$share/g2/a/b"), entry(QoS::AtLeastOnce));
        subs.insert(&bs("x"), &filter("a/b"), entry(QoS::AtMostOnce));
        subs.insert(&bs("z"), &filter("+/b"), entry(QoS::AtMostOnce));

        let routes = route_all(&subs, "a/b", None);
        // Ordinary first, then one member of each group, x chosen in both (pick 0); the two
        // shared routes of x come in no particular order.
        let mut got: Vec<_> = routes
            .iter()
            .map(|r| (r.client.as_ref(), r.shared, r.qos, r.sub_ids.clone()))
            .collect();
        got[2..].sort();
        assert_eq!(
            got,
            [
                ("x", false, QoS::AtMostOnce, vec![]),
                ("z", false, QoS::AtMostOnce, vec![]),
                ("x", true, QoS::AtLeastOnce, vec![]),
                ("x", true, QoS::ExactlyOnce, vec![id(7)]),
            ]
        );
    }

    #[test]
    fn pick_out_of_range_skips_the_group() {
        let mut subs = Subscriptions::new();
        subs.insert(&bs("a"), &filter("$share/g/t"), entry(QoS::AtMostOnce));
        subs.insert(&bs("b"), &filter("t"), entry(QoS::AtMostOnce));
        let mut out = Vec::new();
        subs.route(&topic("t"), None, &mut |m| m.len(), &mut out);
        assert_eq!(clients(&out), ["b"]);
        out.clear();
        subs.route(&topic("t"), None, &mut |_| usize::MAX, &mut out);
        assert_eq!(clients(&out), ["b"]);
    }

    #[test]
    fn route_appends_and_leaves_earlier_routes_alone() {
        let mut subs = Subscriptions::new();
        subs.insert(&bs("a"), &filter("t"), entry(QoS::AtMostOnce));
        subs.insert(&bs("a"), &filter("#"), entry(QoS::AtLeastOnce));
        let mut out = vec![Route {
            client: bs("a"),
            qos: QoS::ExactlyOnce,
            retain_as_published: false,
            sub_ids: vec![],
            shared: false,
        }];
        subs.route(&topic("t"), None, &mut |_| 0, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].qos, QoS::ExactlyOnce);
        assert_eq!(out[1].qos, QoS::AtLeastOnce);
    }

    #[test]
    fn insert_replaces_the_same_filter() {
        // [MQTT-3.8.4-3]
        let mut subs = Subscriptions::new();
        let c = bs("c");
        assert_eq!(
            subs.insert(&c, &filter("a/+"), entry(QoS::AtMostOnce)),
            None
        );
        assert_eq!(
            subs.insert(&c, &filter("a/+"), entry(QoS::ExactlyOnce)),
            Some(entry(QoS::AtMostOnce))
        );
        assert_eq!(
            subs.insert(&c, &filter("$share/g/a/+"), entry(QoS::AtMostOnce)),
            None
        );
        assert_eq!(
            subs.insert(&c, &filter("$share/g/a/+"), entry(QoS::AtLeastOnce)),
            Some(entry(QoS::AtMostOnce))
        );
        assert_eq!(subs.len(), 2);
        let routes = route_all(&subs, "a/b", None);
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].qos, QoS::ExactlyOnce);
        assert_eq!(routes[1].qos, QoS::AtLeastOnce);
    }

    #[test]
    fn remove_prunes_every_node() {
        let mut subs = Subscriptions::new();
        let filters = [
            "a",
            "a/b",
            "a/b/c",
            "a/+/c",
            "+/#",
            "#",
            "/",
            "//",
            "a/#",
            "$SYS/+",
            "x/y/z/w",
            "$share/g/a/b",
            "$share/h/a/b",
            "$share/g/+/+/#",
        ];
        for (i, f) in filters.iter().enumerate() {
            for c in ["c1", "c2"] {
                let mut e = entry(QoS::AtLeastOnce);
                e.id = NonZeroU32::new(i as u32 + 1);
                subs.insert(&bs(c), &filter(f), e);
            }
        }
        assert_eq!(subs.len(), 2 * filters.len());
        assert!(subs.node_count() > 0);
        assert_eq!(subs.remove(&bs("nobody"), &filter("a/b")), None);
        assert_eq!(subs.remove(&bs("c1"), &filter("a/b/c/d")), None);
        assert_eq!(subs.remove(&bs("c1"), &filter("$share/zz/a/b")), None);
        for (i, f) in filters.iter().enumerate() {
            for c in ["c1", "c2"] {
                let removed = subs.remove(&bs(c), &filter(f)).unwrap();
                assert_eq!(removed.id, NonZeroU32::new(i as u32 + 1));
                assert_eq!(subs.remove(&bs(c), &filter(f)), None);
            }
        }
        assert!(subs.is_empty());
        assert_eq!(subs.node_count(), 0);
        assert!(subs.root.is_empty());
        assert!(route_all(&subs, "a/b", None).is_empty());
    }

    #[test]
    fn runs_of_every_length_merge() {
        // Three filters matching `a/b`, each with its own number of clients, interleaved
        // and overlapping by name, so that `settle` takes each of its ways (one by one in
        // either direction, or a sort at the end) and the result is checked against the model.
        let sizes = [0, 1, 2, 7, 8, 9, 20];
        for &n1 in &sizes {
            for &n2 in &sizes {
                for &n3 in &[0, 1, 9] {
                    let mut subs = Subscriptions::new();
                    let mut model = Vec::new();
                    let plans = [
                        ("a/#", n1, 3, 1),
                        ("a/+", n2, 2, 2),
                        ("$share/g/a/b", n3, 5, 3),
                    ];
                    for (f, n, step, qos) in plans {
                        for k in 0..n {
                            let client = format!("c{:02}", (k * step) % 23);
                            let e = SubEntry {
                                options: SubscriptionOptions {
                                    qos: QoS::from_u8(qos % 3).unwrap(),
                                    retain_as_published: k % 2 == 0,
                                    ..SubscriptionOptions::default()
                                },
                                id: NonZeroU32::new(qos as u32 + 10 * (k as u32 % 2)),
                            };
                            if subs.insert(&bs(&client), &filter(f), e.clone()).is_none() {
                                model.push((client, f.to_string(), e));
                            } else {
                                let m = model.iter_mut().find(|m| m.0 == client && m.1 == f);
                                m.unwrap().2 = e;
                            }
                        }
                    }
                    let got = route_all(&subs, "a/b", None);
                    assert_eq!(
                        canonical(&got),
                        naive_route(&model, "a/b", None),
                        "{n1} {n2} {n3}"
                    );
                    assert!(got.windows(2).all(|w| route_order(&w[0], &w[1]).is_le()));
                }
            }
        }
    }

    /// One operation of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, String, SubEntry),
        Remove(String, String),
    }

    const CLIENTS: &[&str] = &["a", "b", "c", "d"];
    const LEVELS: &[&str] = &["a", "b", "$x", ""];

    fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(LEVELS), 1..5)
            .prop_map(|l| l.join("/"))
            .prop_filter("a topic is not empty", |t| !t.is_empty())
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(&["a", "b", "$x", "", "+", "+"][..]);
        let share = prop::sample::select(&["", "", "", "$share/g/", "$share/h/"][..]);
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

    fn entry_strategy() -> impl Strategy<Value = SubEntry> {
        (
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1u32..4),
        )
            .prop_map(|(qos, no_local, rap, id)| SubEntry {
                options: SubscriptionOptions {
                    qos: QoS::from_u8(qos).unwrap(),
                    no_local,
                    retain_as_published: rap,
                    ..SubscriptionOptions::default()
                },
                id: id.and_then(NonZeroU32::new),
            })
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        let client = prop::sample::select(CLIENTS).prop_map(String::from);
        prop_oneof![
            3 => (client.clone(), filter_strategy(), entry_strategy())
                .prop_map(|(c, f, e)| Op::Insert(c, f, e)),
            1 => (client, filter_strategy()).prop_map(|(c, f)| Op::Remove(c, f)),
        ]
    }

    /// A route in a form that compares regardless of the order of identifiers.
    type Canonical = (bool, String, QoS, bool, BTreeSet<NonZeroU32>);

    fn canonical(routes: &[Route]) -> Vec<Canonical> {
        let mut v: Vec<Canonical> = routes
            .iter()
            .map(|r| {
                let ids: BTreeSet<_> = r.sub_ids.iter().copied().collect();
                assert_eq!(ids.len(), r.sub_ids.len(), "duplicate ids in {r:?}");
                (
                    r.shared,
                    r.client.to_string(),
                    r.qos,
                    r.retain_as_published,
                    ids,
                )
            })
            .collect();
        v.sort();
        v
    }

    /// What `route` should say, from a plain list of subscriptions and `matches`.
    fn naive_route(
        model: &[(String, String, SubEntry)],
        t: &str,
        publisher: Option<&str>,
    ) -> Vec<Canonical> {
        let mut ordinary: BTreeMap<String, (QoS, bool, BTreeSet<NonZeroU32>)> = BTreeMap::new();
        let mut groups: BTreeMap<(String, String), Vec<(String, SubEntry)>> = BTreeMap::new();
        for (client, f, e) in model {
            let tf = filter(f);
            if !matches(tf.matching_filter(), t) {
                continue;
            }
            if let Some(shared) = tf.shared() {
                groups
                    .entry((shared.group.to_string(), shared.filter.to_string()))
                    .or_default()
                    .push((client.clone(), e.clone()));
                continue;
            }
            if e.options.no_local && publisher == Some(client.as_str()) {
                continue;
            }
            let r =
                ordinary
                    .entry(client.clone())
                    .or_insert((QoS::AtMostOnce, false, BTreeSet::new()));
            r.0 = r.0.max(e.options.qos);
            r.1 |= e.options.retain_as_published;
            r.2.extend(e.id);
        }
        let mut out: Vec<Canonical> = ordinary
            .into_iter()
            .map(|(c, (q, rap, ids))| (false, c, q, rap, ids))
            .collect();
        for mut members in groups.into_values() {
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let (c, e) = &members[0];
            out.push((
                true,
                c.clone(),
                e.options.qos,
                e.options.retain_as_published,
                e.id.into_iter().collect(),
            ));
        }
        out.sort();
        out
    }

    proptest! {
        #[test]
        fn route_agrees_with_naive_model(
            ops in prop::collection::vec(op_strategy(), 0..40),
            topics in prop::collection::vec(topic_strategy(), 1..8),
            publisher in prop::option::of(prop::sample::select(CLIENTS)),
        ) {
            let mut subs = Subscriptions::new();
            let mut model: Vec<(String, String, SubEntry)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(c, f, e) => {
                        let expected = match model.iter_mut().find(|m| m.0 == c && m.1 == f) {
                            Some(m) => Some(mem::replace(&mut m.2, e.clone())),
                            None => {
                                model.push((c.clone(), f.clone(), e.clone()));
                                None
                            }
                        };
                        prop_assert_eq!(subs.insert(&bs(&c), &filter(&f), e), expected);
                    }
                    Op::Remove(c, f) => {
                        let expected = model
                            .iter()
                            .position(|m| m.0 == c && m.1 == f)
                            .map(|i| model.remove(i).2);
                        prop_assert_eq!(subs.remove(&bs(&c), &filter(&f)), expected);
                    }
                }
                prop_assert_eq!(subs.len(), model.len());
            }
            for t in &topics {
                let got = route_all(&subs, t, publisher);
                prop_assert_eq!(canonical(&got), naive_route(&model, t, publisher));
                // Handed out in order: ordinary before shared, by client.
                prop_assert!(got.windows(2).all(|w| route_order(&w[0], &w[1]).is_le()));
            }
            for (c, f, _) in &model {
                prop_assert!(subs.remove(&bs(c), &filter(f)).is_some());
            }
            prop_assert!(subs.is_empty());
            prop_assert_eq!(subs.node_count(), 0);
        }
    }
}
