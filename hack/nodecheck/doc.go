// Package nodecheck proves, on a real machine, how K3s agents run as Mesos tasks: each one
// a child of a task cgroup, in its own mount namespace, several per machine, and gone
// without a trace when the task is killed. The recipe is agent-task.sh, explained in
// RECIPE.md; TestTwoAgentsOneHost runs it (as root, with a real K3s binary).
package nodecheck
