"""Every GraphQL document agentctl sends to Linear, in one place.

Kept as plain strings so a test can validate each of them against Linear's real
schema (``tests/test_graphql_documents.py``): a field that does not exist fails
there, not in front of a user.
"""

from __future__ import annotations

ISSUE_FIELDS = """
fragment AgentctlIssue on Issue {
  id
  identifier
  number
  title
  description
  url
  branchName
  priority
  createdAt
  state { id name type }
  labels(first: 50) { nodes { id name } }
  team { id key }
}
"""

VIEWER = """
query AgentctlViewer {
  viewer { id name email }
}
"""

TEAM = """
query AgentctlTeam($key: String!) {
  teams(filter: {key: {eq: $key}}, first: 1) {
    nodes {
      id
      key
      name
      states(first: 100) { nodes { id name type position } }
    }
  }
}
"""

ISSUES = (
    """
query AgentctlIssues($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { ...AgentctlIssue }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + ISSUE_FIELDS
)

ISSUE = (
    """
query AgentctlIssueOne($id: String!) {
  issue(id: $id) {
    ...AgentctlIssue
    comments(first: 100) { nodes { id body createdAt } }
    attachments(first: 50) { nodes { id url title } }
  }
}
"""
    + ISSUE_FIELDS
)

SET_STATE = """
mutation AgentctlSetState($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: {stateId: $stateId}) {
    success
    issue { id identifier state { id name type } }
  }
}
"""

COMMENT = """
mutation AgentctlComment($issueId: String!, $body: String!) {
  commentCreate(input: {issueId: $issueId, body: $body}) {
    success
    comment { id }
  }
}
"""

LINK = """
mutation AgentctlLink($issueId: String!, $url: String!, $title: String) {
  attachmentLinkURL(issueId: $issueId, url: $url, title: $title) {
    success
    attachment { id url title }
  }
}
"""

CREATE = (
    """
mutation AgentctlCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) {
    success
    issue { ...AgentctlIssue }
  }
}
"""
    + ISSUE_FIELDS
)

# Parking without a blocked state: a label. Linear keeps labels per team or workspace-wide,
# and refuses a second label of one name in a team, so it is looked up before it is made.
LABELS = """
query AgentctlLabels($name: String!) {
  issueLabels(filter: {name: {eqIgnoreCase: $name}}, first: 50) {
    nodes { id name team { id } }
  }
}
"""

LABEL_CREATE = """
mutation AgentctlLabelCreate($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) {
    success
    issueLabel { id name team { id } }
  }
}
"""

ADD_LABEL = """
mutation AgentctlAddLabel($id: String!, $labelId: String!) {
  issueAddLabel(id: $id, labelId: $labelId) {
    success
    issue { id identifier labels(first: 50) { nodes { id name } } }
  }
}
"""

REMOVE_LABEL = """
mutation AgentctlRemoveLabel($id: String!, $labelId: String!) {
  issueRemoveLabel(id: $id, labelId: $labelId) {
    success
    issue { id identifier labels(first: 50) { nodes { id name } } }
  }
}
"""
