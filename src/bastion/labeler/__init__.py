"""An atproto labeler output: Bastion's label actions as signed ``com.atproto.label.defs#label`` records,
logged with sequence numbers and served on ``com.atproto.label.queryLabels`` and ``subscribeLabels``
(docs/integrate.md, "Publish labels to Bluesky (atproto labeler)")."""
