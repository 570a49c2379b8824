//! W3C trace context across AMQP hops, so that one run reads as one trace.
//!
//! The publisher injects the current span's context into `traceparent`/`tracestate`; the
//! consumer extracts it and makes its own span a child of it. The propagator is whatever the
//! binary installed globally (`TraceContextPropagator`); with none installed, nothing is injected
//! and extraction yields an empty context, which is harmless.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::global;

use crate::headers::Headers;
use crate::names;

/// Put `cx`'s trace context into `headers` (`traceparent`, `tracestate`), replacing what was there.
pub fn inject(cx: &Context, headers: &mut Headers) {
    // A HashMap is opentelemetry's own Injector/Extractor; the propagator writes lower-case keys.
    let mut carrier: HashMap<String, String> = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(cx, &mut carrier));
    headers.traceparent = carrier.remove(names::TRACEPARENT);
    headers.tracestate = carrier.remove(names::TRACESTATE).filter(|s| !s.is_empty());
}

/// The trace context carried by `headers` (an empty context when there is none).
pub fn extract(headers: &Headers) -> Context {
    extract_from(
        headers.traceparent.as_deref(),
        headers.tracestate.as_deref(),
    )
}

/// `cx`'s W3C `traceparent`, to keep beside something that outlives the process (a run).
pub fn traceparent(cx: &Context) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(cx, &mut carrier));
    carrier.remove(names::TRACEPARENT)
}

/// The context a stored `traceparent` names (an empty context when it does not parse).
pub fn from_traceparent(traceparent: &str) -> Context {
    extract_from(Some(traceparent), None)
}

fn extract_from(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    let mut carrier: HashMap<String, String> = HashMap::new();
    if let Some(parent) = traceparent {
        carrier.insert(names::TRACEPARENT.to_string(), parent.to_string());
    }
    if let Some(state) = tracestate {
        carrier.insert(names::TRACESTATE.to_string(), state.to_string());
    }
    global::get_text_map_propagator(|propagator| propagator.extract(&carrier))
}
