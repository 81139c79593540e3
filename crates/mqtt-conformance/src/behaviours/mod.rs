//! The behaviours, one module per topic, and the registry that lists them all.
//!
//! A behaviour is a plain function `fn(&dyn BrokerAdapter, &dyn ClientAdapter) -> Result<(),
//! Failure>`: it starts its own broker on 127.0.0.1:0 (so any number run in parallel), talks
//! to it through the client adapter and, where a well-behaved client cannot show the
//! behaviour, through a [`crate::raw::RawPeer`]; it stops the broker before it returns.
//!
//! To add one: write the function in its module, then add its `module::name` to
//! [`for_each_behaviour!`](crate::for_each_behaviour) below; the registry [`all`] and the
//! `#[test]` functions of `tests/matrix.rs` are both generated from that one list.

use crate::{BrokerAdapter, ClientAdapter, Failure};

pub mod alias;
pub mod bad_input;
pub mod connect;
pub mod expiry;
pub mod keepalive;
pub mod limits;
pub mod qos;
pub mod retain;
pub mod session;
pub mod shared;
pub mod subscribe;
pub mod will;

/// How a behaviour is run.
pub type Run = fn(&dyn BrokerAdapter, &dyn ClientAdapter) -> Result<(), Failure>;

/// One named behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Its function's name, unique in the suite.
    pub name: &'static str,
    /// Its module: the group it belongs to (`connect`, `qos`, ...).
    pub group: &'static str,
    /// The behaviour itself.
    pub run: Run,
}

/// Calls the macro `$callback` with the list of every behaviour, as `module::function`
/// paths separated by commas: the one list the registry and the matrix tests come from.
#[macro_export]
macro_rules! for_each_behaviour {
    ($callback:ident) => {
        $callback! {
            connect::connect_accepted_in_each_version,
            connect::connack_announces_the_broker_limits,
            connect::empty_client_id_is_assigned_one_v5,
            connect::empty_client_id_needs_a_clean_session_v311,
            connect::client_id_too_long_is_refused,
            connect::unsupported_protocol_level_is_refused,
            connect::first_packet_not_connect_is_closed,
            connect::second_connect_is_a_protocol_error,
            connect::connect_timeout_closes_a_silent_socket,
            connect::max_connections_refuses_with_server_busy,
            connect::takeover_tells_the_old_v5_connection_0x8e,
            connect::takeover_hands_the_session_over_v311,
            connect::takeover_of_an_adapter_client,
            qos::qos0_is_delivered,
            qos::qos1_is_delivered_and_acknowledged,
            qos::qos2_is_delivered_and_completed,
            qos::delivery_is_downgraded_to_the_subscription_qos,
            qos::delivery_is_never_upgraded,
            qos::acknowledgements_carry_the_packet_id,
            qos::no_matching_subscribers_is_0x10_in_v5,
            qos::qos2_duplicate_publish_is_delivered_once,
            qos::unacknowledged_qos1_is_resent_with_dup_on_resume,
            qos::unreleased_qos2_gets_pubrel_again_on_resume,
            qos::pubrel_for_an_unknown_id_gets_pubcomp_0x92,
            qos::overlapping_subscriptions_give_one_copy_at_the_highest_qos,
            qos::messages_from_one_publisher_arrive_in_order,
            subscribe::plus_matches_exactly_one_level,
            subscribe::hash_matches_the_parent_and_every_level_below,
            subscribe::dollar_topics_are_not_matched_by_leading_wildcards,
            subscribe::unsubscribe_stops_delivery,
            subscribe::no_local_keeps_own_messages_away,
            subscribe::subscription_identifiers_are_delivered,
            subscribe::resubscribing_replaces_the_qos,
            subscribe::publish_properties_are_forwarded,
            retain::retained_message_is_delivered_on_subscribe,
            retain::retained_message_is_replaced_by_a_newer_one,
            retain::empty_retained_payload_clears_the_topic,
            retain::non_retained_publish_leaves_the_retained_message,
            retain::live_messages_have_retain_cleared,
            retain::retain_as_published_keeps_the_flag,
            retain::retain_handling_0_sends_at_every_subscribe,
            retain::retain_handling_1_sends_only_for_a_new_subscription,
            retain::retain_handling_2_never_sends,
            retain::retained_messages_match_wildcards,
            retain::retained_message_takes_the_lower_qos,
            retain::retained_messages_are_not_sent_to_shared_subscriptions,
            retain::retain_unavailable_is_announced_and_enforced,
            will::will_is_published_when_the_link_is_lost,
            will::no_will_after_a_normal_disconnect,
            will::disconnect_with_will_message_publishes_it,
            will::will_is_published_on_keep_alive_timeout,
            will::will_is_published_on_a_protocol_error,
            will::retained_will_is_kept_for_later_subscribers,
            will::will_qos_and_properties_are_kept,
            will::will_delay_publishes_after_the_delay,
            will::will_delay_is_cancelled_by_a_reconnect,
            will::will_delay_is_cut_short_when_the_session_ends,
            will::takeover_publishes_the_old_will,
            session::clean_session_forgets_subscriptions,
            session::persistent_session_keeps_subscriptions,
            session::messages_queued_offline_arrive_on_resume,
            session::session_present_reflects_a_kept_session,
            session::clean_start_discards_the_old_session_v5,
            session::session_expiry_zero_ends_with_the_connection_v5,
            keepalive::silent_client_is_closed_after_one_and_a_half_keep_alives,
            keepalive::silent_v5_client_is_told_keep_alive_timeout,
            keepalive::pingreq_is_answered_and_keeps_the_connection,
            keepalive::any_packet_resets_the_keep_alive,
            keepalive::server_keep_alive_replaces_a_larger_one_v5,
            keepalive::adapter_client_keeps_itself_alive,
            expiry::session_expires_after_its_interval,
            expiry::session_survives_a_reconnect_within_its_interval,
            expiry::disconnect_can_shorten_the_session_expiry,
            expiry::session_expiry_is_capped_by_the_broker,
            expiry::disconnect_cannot_set_an_expiry_after_zero,
            expiry::expired_queued_messages_are_dropped,
            expiry::message_expiry_is_counted_down,
            expiry::retained_message_expires,
            alias::topic_alias_from_the_client_is_set_then_reused,
            alias::topic_alias_over_the_maximum_is_0x94,
            alias::unknown_topic_alias_is_a_protocol_error,
            alias::topic_aliases_are_off_when_the_maximum_is_0,
            alias::broker_uses_only_the_aliases_the_client_allows,
            alias::topic_aliases_belong_to_one_connection,
            alias::adapter_client_resolves_broker_aliases,
            alias::adapter_client_sends_topic_aliases,
            shared::shared_subscription_gives_each_message_to_one_member,
            shared::shared_groups_and_plain_subscribers_each_get_every_message,
            shared::remaining_member_gets_everything_after_one_leaves,
            shared::shared_subscriptions_off_is_0x9e,
            shared::no_local_on_a_shared_subscription_is_a_protocol_error,
            limits::packet_over_the_maximum_size_is_0x95,
            limits::packet_over_the_maximum_size_closes_v311,
            limits::receive_maximum_exceeded_is_0x93,
            limits::broker_respects_the_client_receive_maximum,
            limits::broker_respects_the_client_maximum_packet_size,
            limits::subscription_quota_is_0x97,
            limits::topic_levels_are_limited,
            limits::full_offline_queue_drops_the_newest,
            bad_input::malformed_packet_closes_only_its_sender_v5,
            bad_input::malformed_packet_closes_only_its_sender_v311,
            bad_input::wildcard_in_a_topic_name_is_0x90,
            bad_input::reserved_flags_are_malformed,
            bad_input::invalid_utf8_topic_is_malformed,
            bad_input::packet_id_zero_is_a_protocol_error,
            bad_input::server_only_packet_from_a_client_is_a_protocol_error,
            bad_input::garbage_before_connect_is_closed_without_an_answer,
            bad_input::huge_connect_is_refused_from_its_header,
            bad_input::subscriber_keeps_receiving_through_garbage_connections,
        }
    };
}

macro_rules! registry {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every behaviour, in the order of the list.
        pub fn all() -> Vec<Behaviour> {
            vec![$(Behaviour {
                name: stringify!($name),
                group: stringify!($module),
                run: $module::$name,
            }),*]
        }
    };
}

for_each_behaviour!(registry);

/// The behaviour called `name`.
pub fn find(name: &str) -> Option<Behaviour> {
    all().into_iter().find(|b| b.name == name)
}

/// What every behaviour module uses.
mod prelude {
    pub(crate) use std::time::{Duration, Instant};

    pub(crate) use bytes::Bytes;
    pub(crate) use mqtt_core::broker::BrokerConfig;
    pub(crate) use mqtt_core::packet::{
        PublishProperties, RetainHandling, SubscribeProperties, Subscription, UserProperty, Will,
        WillProperties,
    };
    pub(crate) use mqtt_core::ProtocolVersion::{V311, V5};
    pub(crate) use mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode};

    pub(crate) use crate::harness::{
        config, granted, msg, options, persistent, sub, Client, Ctx, WAIT,
    };
    pub(crate) use crate::raw::{self, RawPeer};
    pub(crate) use crate::{BrokerAdapter, ClientAdapter, ConnectError, Failure};

    /// What a behaviour returns.
    pub(crate) type Outcome = Result<(), Failure>;
}
