"""What road health concludes from analysed windows, pure (no I/O, no database): a window's
IRI estimate and its judged events, and a segment's estimate from its windows (windows); when a
segment's condition class changes (condition); which pothole reports are one pothole
(clustering). The signal processing they build on is `analytics/` (IRI, shocks, classifiers);
the service features that store and attest the results are `service/`."""
