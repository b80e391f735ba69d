"""MeetingMind: a three-tier B2B meeting-summary service, traced per tenant with tenantscope.

The seeds' multi-tenant cost-tracking cookbook, written with this SDK: every summary is an
OpenAI call made inside the tenant's context (auto-instrumented, so its tokens and cost are
attributed to the tenant), wrapped in a ``meeting-summarization`` span that checks the
tier's latency SLA and records an ``sla-breach`` event when it is missed; at the end each
tenant's usage is read back from the tenantscope server.

Run it (one command, with a tenantscope server listening on the default port)::

    tenantscope serve                  # in another terminal, if not running yet
    python examples/meetingmind.py

Without ``--base-url`` a local fake OpenAI-compatible provider is started in-process (no API
key, no network, deterministic usage; it answers more slowly for longer prompts, so the long
Apex Legal deposition misses its 2 s SLA). ``--base-url https://api.openai.com/v1`` with
``OPENAI_API_KEY`` set uses the real API instead. ``--endpoint`` is the tenantscope server
(default http://127.0.0.1:4318); ``--api-key`` its key, if it requires one. The server being
down does not stop the service: the summaries are still made, only the usage summary at the
end says it could not be read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from openai import OpenAI

import tenantscope
from tenantscope.usage import UsageQueryError, get_tenant_usage


@dataclass(frozen=True)
class TenantConfig:
    """A tenant's service tier."""

    tenant_id: str
    tier: str
    model: str
    features: tuple[str, ...]
    latency_sla_ms: int | None  # None: best effort
    max_calls_per_minute: int


TENANT_CONFIGS = {
    "apex-legal": TenantConfig(
        "apex-legal",
        "enterprise",
        "gpt-4",
        ("summary", "action_items", "decisions", "custom_reports"),
        2000,
        60,
    ),
    "stratex-consulting": TenantConfig(
        "stratex-consulting", "professional", "gpt-4-turbo", ("summary", "action_items"), 3000, 30
    ),
    "techstart-inc": TenantConfig(
        "techstart-inc", "starter", "gpt-3.5-turbo", ("summary",), None, 10
    ),
}


@dataclass(frozen=True)
class SummaryResult:
    tenant_id: str
    tier: str
    summary: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    sla_compliant: bool


class MultiTenantMeetingSummarizer:
    """Meeting summaries, attributed to the tenant that asked for them."""

    def __init__(self, client: OpenAI) -> None:
        self.client = client

    def summarize_meeting(
        self, tenant_id: str, meeting_transcript: str, user_id: str | None = None
    ) -> SummaryResult:
        config = TENANT_CONFIGS[tenant_id]
        # The tenant context: every span started inside, the auto-traced OpenAI call
        # included, carries the tenant, user and session.
        with (
            tenantscope.context(
                tenant_id=tenant_id,
                user_id=user_id,
                session_id=str(uuid.uuid4()),
                feature="meeting-summary",
            ),
            tenantscope.span("meeting-summarization") as span,
        ):
            span.set_attributes({"tier": config.tier, "model": config.model})
            started = time.perf_counter()
            response = self.client.chat.completions.create(  # auto-traced
                model=config.model,
                messages=[
                    {"role": "system", "content": "You are an expert meeting summarizer."},
                    {"role": "user", "content": _prompt(config, meeting_transcript)},
                ],
                temperature=0.3,
            )
            latency_ms = (time.perf_counter() - started) * 1000
            usage = response.usage
            input_tokens = usage.prompt_tokens if usage else 0
            output_tokens = usage.completion_tokens if usage else 0
            # As the cookbook does: usage on the wrapper too. The server counts the call
            # once (the auto-traced call inside is the more specific record).
            span.record_usage(
                model=config.model, input_tokens=input_tokens, output_tokens=output_tokens
            )

            sla_compliant = True
            if config.latency_sla_ms is not None:
                sla_compliant = latency_ms <= config.latency_sla_ms
                span.set_attribute("sla_met", sla_compliant)
                if not sla_compliant:
                    span.add_event(
                        "sla-breach",
                        {"actual_ms": round(latency_ms, 1), "sla_ms": config.latency_sla_ms},
                    )
            span.set_success()
            return SummaryResult(
                tenant_id=tenant_id,
                tier=config.tier,
                summary=response.choices[0].message.content or "",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=latency_ms,
                sla_compliant=sla_compliant,
            )


def _prompt(config: TenantConfig, transcript: str) -> str:
    sections = {
        "summary": "- Executive Summary (2-3 paragraphs)",
        "action_items": "- Action Items (numbered list)",
        "decisions": "- Key Decisions Made",
        "custom_reports": "- Recommendations for Follow-up",
    }
    wanted = "\n".join(sections[f] for f in config.features)
    return f"Summarize this meeting transcript into:\n{wanted}\n\nMeeting Transcript:\n{transcript}"


LEGAL_MEETING = """
Attendees: John (Partner), Sarah (Associate), Mike (Paralegal)
Topic: Case Strategy for Smith v. Jones
John: Let's discuss our approach for the Smith case. The deposition is in 3 weeks.
Sarah: I've reviewed the discovery documents. The key issue is the contract's ambiguity
around the liability clause.
Mike: I've created a timeline. The critical events are on pages 45-67 of the evidence log.
John: Good. Sarah, can you draft a summary of our position by Friday?
Sarah: I'll have it ready. Should I include recommendations for discovery?
John: Yes, especially around vendor communications. Mike, check the related emails.
"""
DEPOSITION_PREP = LEGAL_MEETING + (
    "\nJohn: Let's walk through every exhibit for the deposition, one by one.\n"
    + "Sarah: Exhibit notes, vendor emails, amendments and the liability correspondence.\n" * 40
)
STRATEGY_MEETING = """
Team sync for Q2 strategy planning. Attendees: CEO, CFO, Head of Product
CEO: Let's review our market position and Q2 targets.
CFO: Revenue is up 15% YoY. We're tracking to beat forecast.
Head of Product: New features launched last month show strong adoption.
CFO: Supply chain delays could impact timeline.
Head of Product: We need to hire 3 more engineers to meet roadmap.
CEO: Let's make that happen. Budget approved.
"""
STANDUP = """
Daily standup. Attendees: Dev team
Tom: I finished the API integration yesterday.
Lisa: I'm working on the UI components. Waiting for design approval on the dashboard.
Chris: Testing is on track for Thursday release.
"""
MEETINGS = [
    ("apex-legal", LEGAL_MEETING, "john.smith@apexlegal.com"),
    ("apex-legal", DEPOSITION_PREP, "sarah@apexlegal.com"),
    ("stratex-consulting", STRATEGY_MEETING, "cfo@stratex.com"),
    ("stratex-consulting", STRATEGY_MEETING, "ceo@stratex.com"),
    ("techstart-inc", STANDUP, "dev@techstart.io"),
]


@contextlib.contextmanager
def _provider(base_url: str | None) -> Iterator[tuple[str, str]]:
    """The OpenAI base URL and key: the given ones, or a fake provider run in-process."""
    if base_url:
        yield base_url, os.environ.get("OPENAI_API_KEY", "")
        return
    from tenantscope.testing import FakeProvider  # needs the server extra (Starlette)

    # slower for longer prompts, like a real model: ~0.35 s + 2 ms per input token
    with FakeProvider.running(delay_ms=350, ms_per_input_token=2.0, record=False) as fake:
        yield fake.openai_base_url, "fake-key"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318", help="tenantscope server")
    parser.add_argument("--api-key", default=None, help="tenantscope API key, if required")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API (default: fake)")
    args = parser.parse_args(argv)

    tenantscope.init(
        endpoint=args.endpoint,
        api_key=args.api_key,
        service_name="meetingmind",
        environment="demo",
    )
    tenantscope.instrument_openai()
    started = datetime.now(timezone.utc)

    with _provider(args.base_url) as (base_url, key):
        summarizer = MultiTenantMeetingSummarizer(OpenAI(base_url=base_url, api_key=key))
        results = [summarizer.summarize_meeting(*meeting) for meeting in MEETINGS]

    print("SLA check")
    for r in results:
        target = TENANT_CONFIGS[r.tenant_id].latency_sla_ms
        sla = f"{target} ms" if target else "best effort"
        verdict = "PASS" if r.sla_compliant else "FAIL (sla-breach event recorded)"
        print(
            f"  {r.tenant_id:<20} {r.tier:<13} target {sla:<12} {r.latency_ms:7.0f} ms  {verdict}"
        )

    exported = tenantscope.flush(timeout=10)
    print(f"\nUsage per tenant since {started:%H:%M:%S} UTC (from {args.endpoint})")
    if not exported:
        print("  (some spans are not exported yet: is the server running?)")
    for tenant_id in TENANT_CONFIGS:
        try:
            usage = get_tenant_usage(
                tenant_id, start_time=started, end_time=datetime.now(timezone.utc)
            )
        except UsageQueryError as exc:
            print(f"  {tenant_id:<20} could not read usage: {exc}")
            continue
        print(
            f"  {tenant_id:<20} {usage.request_count:>3} requests  {usage.token_count:>6} tokens"
            f"  {usage.session_count:>2} sessions  ${usage.total_cost}"
        )
    tenantscope.shutdown()


if __name__ == "__main__":
    main()
