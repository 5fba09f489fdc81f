//! Routing table of one worker: global signal index → the subscriptions on this worker that
//! receive it, each with the runtime ID that subscription's signal index cache gave the signal.

/// A subscription slot on a worker and the signal's runtime ID in that subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Slot of the subscription in the worker's table.
    pub slot: u32,
    /// Runtime ID from that subscription's signal index cache (wire.md §5).
    pub runtime_id: i32,
}

/// Signal → routes, indexed directly by the global signal index.
#[derive(Debug, Default, Clone)]
pub struct RoutingTable {
    by_signal: Vec<Vec<Route>>,
}

impl RoutingTable {
    /// Builds the table from every active subscription's `(slot, [(signal, runtime id)])`.
    pub fn build<'a>(subs: impl IntoIterator<Item = (u32, &'a [(u32, i32)])>) -> Self {
        let mut by_signal: Vec<Vec<Route>> = Vec::new();
        for (slot, routes) in subs {
            for &(signal, runtime_id) in routes {
                let i = signal as usize;
                if by_signal.len() <= i {
                    by_signal.resize_with(i + 1, Vec::new);
                }
                if let Some(list) = by_signal.get_mut(i) {
                    list.push(Route { slot, runtime_id });
                }
            }
        }
        Self { by_signal }
    }

    /// Routes of one signal (empty when nobody subscribed to it).
    #[inline]
    pub fn routes(&self, signal: u32) -> &[Route] {
        self.by_signal
            .get(signal as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fan_out_per_signal() {
        let a: Vec<(u32, i32)> = vec![(0, 0), (5, 1)];
        let b: Vec<(u32, i32)> = vec![(5, 0)];
        let t = RoutingTable::build([(0, a.as_slice()), (1, b.as_slice())]);
        assert_eq!(
            t.routes(0),
            &[Route {
                slot: 0,
                runtime_id: 0
            }]
        );
        assert_eq!(
            t.routes(5),
            &[
                Route {
                    slot: 0,
                    runtime_id: 1
                },
                Route {
                    slot: 1,
                    runtime_id: 0
                }
            ]
        );
        assert!(t.routes(3).is_empty());
        assert!(t.routes(99).is_empty());
    }
}
