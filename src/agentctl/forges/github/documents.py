"""Every GraphQL document agentctl sends to GitHub (API v4), in one place.

Validated against GitHub's real schema by ``tests/test_graphql_documents.py``.
"""

from __future__ import annotations

PR_FIELDS = """
fragment AgentctlPr on PullRequest {
  id
  number
  title
  body
  url
  state
  headRefName
  baseRefName
  headRefOid
  mergeable
  mergeCommit { oid }
  author { login }
  reviews(last: 50) {
    nodes { id state body submittedAt author { login } commit { oid } }
  }
  commits(last: 1) {
    nodes { commit { oid statusCheckRollup { state } } }
  }
}
"""

VIEWER = """
query AgentctlViewer {
  viewer { login }
}
"""

REPOSITORY = """
query AgentctlRepository($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {
    id
    nameWithOwner
    defaultBranchRef { name }
  }
}
"""

PULL_REQUESTS = (
    """
query AgentctlPullRequests(
  $owner: String!, $name: String!, $states: [PullRequestState!], $head: String,
  $first: Int!, $after: String, $direction: OrderDirection!
) {
  repository(owner: $owner, name: $name) {
    pullRequests(
      states: $states, headRefName: $head, first: $first, after: $after,
      orderBy: {field: CREATED_AT, direction: $direction}
    ) {
      nodes { ...AgentctlPr }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
    + PR_FIELDS
)

PULL_REQUEST = (
    """
query AgentctlPullRequest($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) { ...AgentctlPr }
  }
}
"""
    + PR_FIELDS
)

CREATE_PR = (
    """
mutation AgentctlCreatePr($input: CreatePullRequestInput!) {
  createPullRequest(input: $input) { pullRequest { ...AgentctlPr } }
}
"""
    + PR_FIELDS
)

REVIEW = """
mutation AgentctlReview($input: AddPullRequestReviewInput!) {
  addPullRequestReview(input: $input) { pullRequestReview { id state url } }
}
"""

MERGE = (
    """
mutation AgentctlMerge($input: MergePullRequestInput!) {
  mergePullRequest(input: $input) { pullRequest { ...AgentctlPr } }
}
"""
    + PR_FIELDS
)

COMMENT = """
mutation AgentctlComment($input: AddCommentInput!) {
  addComment(input: $input) { commentEdge { node { id url } } }
}
"""
