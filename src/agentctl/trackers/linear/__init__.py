"""Linear as the tracker: GraphQL documents and the ``Tracker`` over them."""
