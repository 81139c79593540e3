//! The scenarios and the topology each one builds: which publishers publish to which topics,
//! and which subscribers, in which groups, should hear which publishers.

use anyhow::{bail, Context};
use clap::ValueEnum;
use mqtt_core::topic::{TopicFilter, TopicName};

/// What `mqtt bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Open N connections (at --conn-rate) and hold them: connect rate, broker memory
    Conn,
    /// P publishers only: the publish rate the broker accepts
    Pub,
    /// S subscribers only, to messages published by anyone else
    Sub,
    /// P publishers, each to its own topic, to one subscriber of them all
    FanIn,
    /// One publisher to S subscribers of its topic
    FanOut,
    /// N independent publisher/subscriber pairs, each on its own topic
    Pairs,
    /// P publishers to one $share group of S subscribers
    Shared,
}

impl Scenario {
    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Conn => "conn",
            Self::Pub => "pub",
            Self::Sub => "sub",
            Self::FanIn => "fan-in",
            Self::FanOut => "fan-out",
            Self::Pairs => "pairs",
            Self::Shared => "shared",
        }
    }
}

/// A topic with `%i` standing for the publisher's (or pair's) index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// The name of a `$share` group of the `shared` scenario.
    pub const SHARE_GROUP: &'static str = "mqtt-bench";

    /// Checks that `pattern` makes valid topic names.
    pub fn new(pattern: &str) -> anyhow::Result<Self> {
        let this = Self(pattern.to_owned());
        this.topic(0)?;
        TopicFilter::new(this.wildcard().as_str())
            .with_context(|| format!("-t {pattern:?}: no filter matches it"))?;
        Ok(this)
    }

    /// Whether `%i` appears: each index has a topic of its own.
    pub fn per_index(&self) -> bool {
        self.0.contains("%i")
    }

    /// The topic of index `i`.
    pub fn topic(&self, i: usize) -> anyhow::Result<TopicName> {
        let name = self.0.replace("%i", &i.to_string());
        TopicName::new(name.as_str()).with_context(|| format!("-t {:?}: topic {name:?}", self.0))
    }

    /// A filter matching every index's topic: each level with `%i` becomes `+`.
    pub fn wildcard(&self) -> String {
        self.0
            .split('/')
            .map(|level| if level.contains("%i") { "+" } else { level })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Subscribers that share one stream of messages: a lone subscriber, or a `$share` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// What each member subscribes to.
    pub filter: TopicFilter,
    /// How many subscribers.
    pub members: usize,
    /// The publishers whose every message the group should receive (once, across members).
    pub from: Vec<usize>,
}

/// Who publishes where, and who should hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// One topic per publisher, by index.
    pub publishers: Vec<TopicName>,
    /// The subscriber groups.
    pub groups: Vec<Group>,
}

impl Topology {
    /// The topology of `scenario` with `publishers` publishers, `subscribers` subscribers or
    /// `pairs` pairs, as the scenario uses them (`conn` has none).
    pub fn new(
        scenario: Scenario,
        pattern: &TopicPattern,
        publishers: usize,
        subscribers: usize,
        pairs: usize,
    ) -> anyhow::Result<Self> {
        let topics = |n: usize| {
            (0..n)
                .map(|i| pattern.topic(i))
                .collect::<Result<Vec<_>, _>>()
        };
        let filter =
            |f: String| TopicFilter::new(f.as_str()).with_context(|| format!("topic filter {f:?}"));
        let all = |n: usize| (0..n).collect::<Vec<_>>();
        let lone = |filter: TopicFilter, from: Vec<usize>| Group {
            filter,
            members: 1,
            from,
        };
        Ok(match scenario {
            Scenario::Conn => Self {
                publishers: Vec::new(),
                groups: Vec::new(),
            },
            Scenario::Pub => Self {
                publishers: topics(publishers)?,
                groups: Vec::new(),
            },
            Scenario::Sub => Self {
                publishers: Vec::new(),
                groups: (0..subscribers)
                    .map(|_| filter(pattern.wildcard()).map(|f| lone(f, Vec::new())))
                    .collect::<anyhow::Result<_>>()?,
            },
            Scenario::FanIn => Self {
                publishers: topics(publishers)?,
                groups: vec![lone(filter(pattern.wildcard())?, all(publishers))],
            },
            Scenario::FanOut => {
                let topic = pattern.topic(0)?;
                Self {
                    groups: (0..subscribers)
                        .map(|_| filter(topic.to_string()).map(|f| lone(f, vec![0])))
                        .collect::<anyhow::Result<_>>()?,
                    publishers: vec![topic],
                }
            }
            Scenario::Pairs => {
                if pairs > 1 && !pattern.per_index() {
                    bail!("pairs: -t needs %i, so that each pair has a topic of its own");
                }
                Self {
                    publishers: topics(pairs)?,
                    groups: (0..pairs)
                        .map(|i| filter(pattern.topic(i)?.to_string()).map(|f| lone(f, vec![i])))
                        .collect::<anyhow::Result<_>>()?,
                }
            }
            Scenario::Shared => Self {
                publishers: topics(publishers)?,
                groups: vec![Group {
                    filter: filter(format!(
                        "$share/{}/{}",
                        TopicPattern::SHARE_GROUP,
                        pattern.wildcard()
                    ))?,
                    members: subscribers,
                    from: all(publishers),
                }],
            },
        })
    }

    /// Subscribers in all groups.
    pub fn subscribers(&self) -> usize {
        self.groups.iter().map(|g| g.members).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> TopicPattern {
        TopicPattern::new(p).unwrap()
    }

    #[test]
    fn patterns_make_topics_and_a_filter() {
        let p = pattern("bench/%i/x");
        assert_eq!(p.topic(12).unwrap().as_str(), "bench/12/x");
        assert_eq!(p.wildcard(), "bench/+/x");
        assert_eq!(pattern("a/b%i").wildcard(), "a/+");
        assert_eq!(pattern("fixed").wildcard(), "fixed");
        assert!(TopicPattern::new("a/#").is_err());
        assert!(TopicPattern::new("a/+/%i").is_err());
    }

    #[test]
    fn each_scenario_says_who_hears_whom() {
        let p = pattern("b/%i");
        let fan_in = Topology::new(Scenario::FanIn, &p, 3, 9, 9).unwrap();
        assert_eq!(fan_in.publishers.len(), 3);
        assert_eq!(fan_in.groups.len(), 1);
        assert_eq!(fan_in.groups[0].filter.as_str(), "b/+");
        assert_eq!(fan_in.groups[0].from, vec![0, 1, 2]);

        let fan_out = Topology::new(Scenario::FanOut, &p, 9, 4, 9).unwrap();
        assert_eq!(fan_out.publishers.len(), 1);
        assert_eq!(fan_out.subscribers(), 4);
        assert!(fan_out.groups.iter().all(|g| g.filter.as_str() == "b/0"));

        let pairs = Topology::new(Scenario::Pairs, &p, 9, 9, 2).unwrap();
        assert_eq!(pairs.groups[1].filter.as_str(), "b/1");
        assert_eq!(pairs.groups[1].from, vec![1]);
        assert!(Topology::new(Scenario::Pairs, &pattern("b"), 1, 1, 2).is_err());

        let shared = Topology::new(Scenario::Shared, &p, 2, 5, 9).unwrap();
        assert_eq!(shared.groups.len(), 1);
        assert_eq!(shared.groups[0].members, 5);
        assert_eq!(shared.groups[0].filter.as_str(), "$share/mqtt-bench/b/+");

        let sub = Topology::new(Scenario::Sub, &p, 9, 2, 9).unwrap();
        assert!(sub.publishers.is_empty());
        assert_eq!(sub.subscribers(), 2);
        assert!(Topology::new(Scenario::Pub, &p, 2, 9, 9)
            .unwrap()
            .groups
            .is_empty());
    }
}
