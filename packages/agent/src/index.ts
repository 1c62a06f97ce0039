export { startAgent, type AgentHandle, type AgentOptions, type AgentState } from './agent.js';
export { plan, findImage } from './reconcile/plan.js';
export type { Step, Action, StepArgs, Executors } from './reconcile/steps.js';
export type { ContainerEngine, EngineSnapshot } from './engine/container-engine.js';
export { DockerEngine } from './engine/docker-engine.js';
export { buildTargetModel } from './compose/target-model.js';
export { NAMESPACE_LABEL } from './compose/names.js';
