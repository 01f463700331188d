from tta_agent_coordination.plans import RunMode, RunStatus, Task

from .conftest import CHECKER, WRITER


async def test_multi_step_run_completes_on_agents(agents, make_runtime):
    await agents.start(WRITER, "w1")
    await agents.start(CHECKER, "c1")
    runtime, _ = await make_runtime()
    result = await runtime.execute(Task(agent=WRITER, payload={"text": "hi"}), timeout=20)
    assert result.status is RunStatus.COMPLETED
    assert result.mode is RunMode.MULTI_STEP
    assert [r.step_id for r in result.steps] == ["draft", "check"]
    assert result.result is not None
    assert result.result.output == {"done": "check", "by": "checker", "input": "hi"}
    assert [name for name, _ in agents.calls] == ["draft", "check"]
